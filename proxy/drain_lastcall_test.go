package proxy

import (
	"context"
	"crypto/tls"
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

// The same over TLS (HTTP/1.1).
func TestPacedTLSClientsLoseNothingAtADrain(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from demo pid=1") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	run := loadclient.Start(context.Background(), loadclient.Config{Addr: f.tlsAddr, Host: "a.test", Conns: 40,
		Pause: 150 * time.Millisecond, PauseFrom: 50 * time.Millisecond, Duration: 2 * time.Second,
		TLS: &tls.Config{RootCAs: f.roots}})
	time.Sleep(700 * time.Millisecond)
	f.srv.SetDraining(true)
	<-run.Done()
	if err := run.Stop().Err(); err != nil {
		t.Fatal(err)
	}
}

// heldHello answers "hello", and on /slow sends the head (Content-Length:
// 5, keep-alive) at once and the body once release is closed.
func heldHello(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-release
		}
		io.WriteString(w, "hello")
	}
}

// A response whose head went out keep-alive before draining began, and
// whose end after: its connection has its last call too, and the
// client's next request is answered (with Connection: close).
func TestAResponseAcrossTheDrainsStartGetsALastCall(t *testing.T) {
	release := make(chan struct{})
	in := startInstance(t, "a", heldHello(release))
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	io.WriteString(cl.c, get("x", "/slow"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Close {
		t.Fatal("Connection: close before the drain")
	}
	f.srv.SetDraining(true)
	close(release)
	io.ReadAll(resp.Body)
	resp.Body.Close()
	time.Sleep(50 * time.Millisecond) // a paced client's pause
	next, _, err := cl.do(get("x", "/next"))
	if err != nil {
		t.Fatalf("the next request on a connection whose last answer said keep-alive: %v", err)
	}
	if !next.Close {
		t.Error("its answer while draining: no Connection: close")
	}
	expectClosed(t, cl, "after the answer with Connection: close")
}

// Undrained within the last call, a connection kept alive lives out its
// own IdleTimeout: the last call's deadline, written on the socket, does
// not close it (2 s here, with which it is not parked; or parking off).
func TestAnUndrainWithinTheLastCallKeepsTheConnection(t *testing.T) {
	for _, o := range []Options{{IdleTimeout: 2 * time.Second}, {parkAfter: -1}} {
		in := startInstance(t, "a", nil)
		f := startProxy(t, o, Route{Port: 1, Set: setOf(t, "s", in)})
		cl := dial(t, f.addr)
		cl.mustDo(get("x", "/1"))
		time.Sleep(20 * time.Millisecond)
		f.srv.SetDraining(true)
		f.srv.SetDraining(false)
		time.Sleep(30 * time.Millisecond)
		if resp, _ := cl.mustDo(get("x", "/2")); resp.Close {
			t.Fatal("undrained, yet Connection: close")
		}
		time.Sleep(lastCall + 200*time.Millisecond) // past the last call, within IdleTimeout
		if _, _, err := cl.do(get("x", "/3")); err != nil {
			t.Errorf("IdleTimeout %v: a kept-alive connection closed at the end of a last call after an undrain: %v", o.IdleTimeout, err)
		}
	}
}

// A drain that begins as a hand-over (PassConnections) has begun leaves
// the idle connections to it: a last call would hold them past a short
// hand-over's end, cut instead of passed.
func TestADrainDuringAHandOverLeavesItsConnectionsToIt(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in)})
	const n = 300
	for range n {
		dial(t, f.addr).mustDo(get("x", "/"))
	}
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		f.srv.PassConnections(ctx, func(*Handover) error { return nil })
		close(done)
	}()
	waitUntil(t, "the hand-over begun", func() bool { return f.srv.shutting.Load() })
	f.srv.SetDraining(true)
	<-done
	if st := f.srv.PassStats(); st.Cut != 0 || st.Clients != n {
		t.Errorf("%+v, want all %d passed", st, n)
	}
}
