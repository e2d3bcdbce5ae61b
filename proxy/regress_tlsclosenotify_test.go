package proxy

import (
	"fmt"
	"testing"
	"time"
)

// TestTLSClientLeavingAQuietStreamWithCloseNotify: a TLS client that
// leaves a quiet stream (HTTP/1.1) the orderly way, close_notify then its
// FIN, is heard of without the instance sending: the alert is a record in
// the socket, which a look at the socket takes for a request on its way;
// the FIN behind it shows only once the record is read. The instance's
// connection closes soon, parked or not.
func TestTLSClientLeavingAQuietStreamWithCloseNotify(t *testing.T) {
	for _, parked := range []bool{false, true} {
		t.Run(fmt.Sprintf("parked=%v", parked), func(t *testing.T) {
			in := startStreamInstance(t)
			opts := Options{}
			if parked {
				opts = parkOpts(opts)
			}
			f := startTLSProxy(t, opts, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "s", in.ln.Addr().String())})
			cl, _ := openTLSEvents(t, f, "/events")
			in.end(t)
			if parked {
				waitParked(t, f.srv, 1)
			} else {
				time.Sleep(300 * time.Millisecond) // past a look at the client
			}
			left := time.Now()
			cl.c.Close() // close_notify, then FIN
			waitUntil(t, "the instance's connection closed", func() bool { return in.closed.Load() == 1 })
			if d := time.Since(left); d > 2*time.Second {
				t.Errorf("the instance's connection closed %v after the client left, want within about a second", d)
			}
			waitUntil(t, "nothing left", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
		})
	}
}

// TestTLSRequestPipelinedBehindAQuietStream: a request a TLS client sends
// while its stream is quiet is read here to tell it from a close_notify,
// and kept: it is answered once the stream ends, and the stream is not
// parked meanwhile (a pipelined request keeps the goroutine).
func TestTLSRequestPipelinedBehindAQuietStream(t *testing.T) {
	in := startStreamInstance(t)
	f := startTLSProxy(t, parkOpts(Options{}), Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	cl, resp := openTLSEvents(t, f, "/events")
	expectPipelinedBehindStream(t, f.srv, cl, resp, in.end(t), "a.test")
}
