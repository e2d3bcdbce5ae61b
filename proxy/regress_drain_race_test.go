package proxy

import (
	"io"
	"testing"
	"time"
)

// TestDrainingRefusesRequestAlreadySent: SetDraining's doc says no
// request is refused. A request the client has already sent on an idle
// keep-alive connection (parked, or waiting in its goroutine) when
// SetDraining(true) runs is dropped: a parked one is closed by SetDraining
// without looking whether it is readable, an idle one gets a read deadline
// of now, and a read past its deadline fails before looking at the socket.
func TestDrainingRefusesRequestAlreadySent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		parkAfter time.Duration
	}{{"parked", 50 * time.Millisecond}, {"idle", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			in := startInstance(t, "a", nil)
			f := startProxy(t, Options{parkAfter: tc.parkAfter, IdleTimeout: 10 * time.Second}, Route{Port: 1, Set: setOf(t, "s", in)})
			refused := 0
			const rounds = 20
			for i := range rounds {
				cl := dial(t, f.addr)
				cl.mustDo(get("x", "/"))
				if tc.parkAfter > 0 {
					waitUntil(t, "parked", func() bool { return f.srv.parker.count() == 1 })
				} else {
					time.Sleep(20 * time.Millisecond)
				}
				io.WriteString(cl.c, get("x", "/sent-before-drain"))
				// On loopback, the write has put the request in the proxy's socket.
				f.srv.SetDraining(true)
				cl.c.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, body, err := cl.do(""); err != nil || body != "a GET /sent-before-drain" {
					refused++
					if refused == 1 {
						t.Logf("round %d: request sent before SetDraining(true): %v %q", i, err, body)
					}
				}
				cl.c.Close()
				f.srv.SetDraining(false)
				waitUntil(t, "closed", func() bool { return f.srv.connCount() == 0 })
			}
			if refused > 0 {
				t.Errorf("%d of %d requests already sent on an idle connection were refused by SetDraining(true)", refused, rounds)
			}
		})
	}
}
