package proxy

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// At a hand-over, a connection whose end-of-response flush (in
// waitForRequest) timed out, its client no longer reading, is closed, not
// parked in the line and passed: parking gives its writer back with the
// end of that response unsent, and the client would read the next
// response as the rest of the last one (found by a review of the line;
// regress_flushpark_test.go is the same for a plain parking).
func TestHandOverDoesNotPassAConnectionWhoseFlushTimedOut(t *testing.T) {
	in := stuckFlushInstance(t, nil)
	old := startProxy(t, stuckFlushOpts(), Route{Port: 1, Set: setOf(t, "a", in)})
	next := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "a", in)})

	nc := dialSmallRcvbuf(t, old.addr)
	asked := fillUntilStuck(t, old.srv, nc, "x", "/big", 0)
	if _, err := io.WriteString(nc, get("x", "/after")); err != nil {
		t.Fatal(err)
	}
	var passed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := old.srv.PassConnections(ctx, passTo(next.srv, &passed)); err != nil {
		t.Fatalf("PassConnections: %v", err)
	}
	t.Logf("passed %d (asked %d)", passed.Load(), asked)
	br := bufio.NewReader(nc)
	for i := 0; i <= asked; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Logf("response %d: %v (closed: right)", i, err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if k := strings.Index(string(b), "HTTP/1.1"); k >= 0 {
			t.Fatalf("response %d: its body holds the next response at byte %d: a connection whose flush timed out was passed and served on", i, k)
		}
	}
	if passed.Load() != 0 {
		t.Errorf("the connection whose flush timed out was passed")
	}
}
