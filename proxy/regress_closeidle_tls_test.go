package proxy

import (
	"sync/atomic"
	"testing"
	"time"
)

// Server.Close closed an idle TLS connection that was not (yet) parked
// through its tls.Conn, under s.mu: the close_notify it writes first
// waited for a client that stopped reading (up to 5 s with a real full
// socket), and held Close, and every forget and newConn, meanwhile. It
// closes the TCP connection under it now (hardClose); the connection's
// goroutine ends it.
func TestCloseDoesNotWaitForIdleTLSCloseNotify(t *testing.T) {
	in := startInstance(t, "a", nil)
	opts := Options{IdleTimeout: 10 * time.Second}
	opts.parkAfter = -1 // idle, never parked (as in the first parkAfter of any idle period)
	f := startProxy(t, opts, Route{Port: 1, Set: setOf(t, "p", in)}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
	var shut atomic.Bool
	secure := gatedTLSClient(t, f, &shut)
	secure.mustDo(get("a.test", "/"))
	time.Sleep(100 * time.Millisecond) // idle, in its wait
	shut.Store(true)                   // its close_notify cannot go out
	go func() { time.Sleep(2 * time.Second); shut.Store(false) }()
	t0 := time.Now()
	f.srv.Close()
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("Server.Close took %v: it waited, holding s.mu, for an idle (unparked) TLS connection's close_notify", d.Round(time.Millisecond))
	}
	waitUntil(t, "the TLS connection forgotten", func() bool { return f.srv.connCount() == 0 })
	expectClosed(t, secure, "the TLS connection after Close")
}
