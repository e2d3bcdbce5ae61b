package proxy

import (
	"testing"
	"time"
)

// TestDrainingServesSlowFirstRequest: SetDraining's doc says new
// connections are still accepted and served (one request each), and
// stateFirst says SetDraining leaves a connection waiting for its first
// request be. A connection whose first request comes after parkAfter (a
// browser's preconnect) but well within IdleTimeout is closed instead:
// its wait ends at the parkAfter deadline, parking is refused while
// draining, and the timeout is taken for SetDraining's (wait.go
// waitForRequest), counted in DrainClosed too.
func TestDrainingServesSlowFirstRequest(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{IdleTimeout: 10 * time.Second, parkAfter: 300 * time.Millisecond}, Route{Port: 1, Set: setOf(t, "s", in)})
	f.srv.SetDraining(true)
	cl := dial(t, f.addr)
	time.Sleep(700 * time.Millisecond) // past parkAfter, far from IdleTimeout
	resp, body, err := cl.do(get("x", "/first"))
	if err != nil {
		t.Fatalf("first request 0.7s after connecting, while draining (IdleTimeout 10s): %v; DrainClosed=%d", err, f.srv.DrainClosed())
	}
	if body != "a GET /first" || !resp.Close {
		t.Fatalf("first request while draining: %q close=%v, want the answer with Connection: close", body, resp.Close)
	}
	// Counted once the connection has closed, just after its answer.
	waitUntil(t, "DrainClosed 1", func() bool { return f.srv.DrainClosed() == 1 })
}

// TestDrainingBeganWhileFirstWaitPending: the same, for a connection
// accepted before SetDraining(true), whose parkAfter deadline is pending
// when draining begins.
func TestDrainingBeganWhileFirstWaitPending(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{IdleTimeout: 10 * time.Second, parkAfter: 400 * time.Millisecond}, Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	waitUntil(t, "the connection waiting for its first request", func() bool {
		f.srv.mu.Lock()
		defer f.srv.mu.Unlock()
		for c := range f.srv.conns {
			if c.state.Load() == stateFirst {
				return true
			}
		}
		return false
	})
	f.srv.SetDraining(true)
	time.Sleep(800 * time.Millisecond)
	resp, body, err := cl.do(get("x", "/first"))
	if err != nil {
		t.Fatalf("first request while draining (IdleTimeout 10s): %v; DrainClosed=%d", err, f.srv.DrainClosed())
	}
	if body != "a GET /first" || !resp.Close {
		t.Fatalf("first request while draining: %q close=%v", body, resp.Close)
	}
}
