package proxy

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
)

// Keep-alive clients that send one request at a time, a little apart, lose
// none at a drain: a connection idle when it begins has its last call
// (lastCall), and its next request is answered with Connection: close
// (the client goes on on a new connection). Closed at once, as before, a
// strict client (no retries, as wrk) lost the request it sent next on
// each connection idle then.
func TestPacedClientsLoseNothingAtADrain(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from demo pid=1") })
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in)})
	run := loadclient.Start(context.Background(), loadclient.Config{Addr: f.addr, Host: "x", Conns: 40,
		Pause: 150 * time.Millisecond, PauseFrom: 50 * time.Millisecond, Duration: 2 * time.Second})
	time.Sleep(700 * time.Millisecond)
	f.srv.SetDraining(true)
	<-run.Done()
	r := run.Stop()
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if r.Reconnects < 40 {
		t.Errorf("%d reconnects, want one a connection at least (told Connection: close): %v", r.Reconnects, r)
	}
	if n := f.srv.DrainClosed(); n < 40 {
		t.Errorf("DrainClosed = %d, want 40 or more", n)
	}
	t.Log(r)
}
