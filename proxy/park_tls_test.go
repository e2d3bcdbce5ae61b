package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// Parking over TLS (park.go's parkable): a tls.Conn's state stays with the
// connection, and one parked with part of a record read goes on when the
// rest comes.

// splitConn writes, when armed, the first bytes of its next write, waits,
// calls mid, then writes the rest: a TLS record in two pieces.
type splitConn struct {
	net.Conn
	pause atomic.Int64 // > 0: arm the next write, pausing this long (ns)
	mid   func()
}

func (s *splitConn) Write(b []byte) (int, error) {
	d := s.pause.Swap(0)
	if d <= 0 || len(b) <= 8 {
		return s.Conn.Write(b)
	}
	n, err := s.Conn.Write(b[:8])
	if err != nil {
		return n, err
	}
	time.Sleep(time.Duration(d) / 2)
	if s.mid != nil {
		s.mid()
	}
	time.Sleep(time.Duration(d) / 2)
	m, err := s.Conn.Write(b[8:])
	return n + m, err
}

// dialTLS opens an HTTP/1.1 connection to f's TLS port, for a.test.
func dialTLS(t *testing.T, f *tlsFixture) (*client, *splitConn) {
	t.Helper()
	nc, err := net.Dial("tcp", f.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	sc := &splitConn{Conn: nc}
	tc := tls.Client(sc, &tls.Config{RootCAs: f.roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	t.Cleanup(func() { tc.Close() })
	return &client{t: t, c: tc, br: bufio.NewReader(tc)}, sc
}

func TestTLSConnectionParksAndServesOn(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startTLSProxy(t, parkOpts(Options{}), Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
	cl, sc := dialTLS(t, f)
	cl.mustDo(get("a.test", "/1"))
	waitParked(t, f.srv, 1)

	// Woken, answered, parked again.
	if resp, body := cl.mustDo(get("a.test", "/2")); body != "a GET /2" || resp.Close {
		t.Fatalf("after parking: %q close=%v", body, resp.Close)
	}
	waitParked(t, f.srv, 1)

	// A record whose first bytes come before the connection parks (25-50 ms
	// into its wait) and the rest after: parked with part of it read.
	resp, body := cl.mustDo(get("a.test", "/3"))
	if body != "a GET /3" {
		t.Fatalf("before the split record: %q", body)
	}
	var parkedMid atomic.Int64
	sc.mid = func() { parkedMid.Store(int64(f.srv.parker.count())) }
	sc.pause.Store(int64(300 * time.Millisecond))
	if resp, body = cl.mustDo(get("a.test", "/split")); body != "a GET /split" || resp.Close {
		t.Fatalf("a record in two pieces across parking: %q close=%v", body, resp.Close)
	}
	if n := parkedMid.Load(); n != 1 {
		t.Errorf("parked while half a record was in: %d, want 1", n)
	}

	// Pipelined, in one record.
	waitParked(t, f.srv, 1)
	expectPipelinedAnswers(t, cl, "a.test")

	// The client leaves while parked: closed and forgotten.
	waitParked(t, f.srv, 1)
	cl.c.Close()
	waitUntil(t, "the connection forgotten", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
}

func TestParkedTLSConnectionsStayAtAnUpgrade(t *testing.T) {
	oldIn, newIn := startInstance(t, "old", nil), startInstance(t, "new", nil)
	old := startTLSProxy(t, parkOpts(Options{ShutdownGrace: 3 * time.Second}),
		Route{Port: 1, Set: setOf(t, "s", oldIn)}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", oldIn)})
	next := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", newIn)})
	plain := dial(t, old.addr)
	plain.mustDo(get("x", "/"))
	secure, _ := dialTLS(t, old)
	secure.mustDo(get("a.test", "/"))
	waitParked(t, old.srv, 2)

	var passed atomic.Int64
	done := make(chan error, 1)
	go func() { done <- old.srv.PassConnections(context.Background(), passTo(next.srv, &passed)) }()
	waitUntil(t, "the plain connection passed", func() bool { return passed.Load() == 1 })
	if resp, body := plain.mustDo(get("x", "/")); body != "new GET /" || resp.Close {
		t.Errorf("plain, after the pass: %q close=%v, want the new process's answer", body, resp.Close)
	}
	// A TLS connection's state is this process's: it is not passed, and
	// its next request is answered here, as the last on it.
	if resp, body := secure.mustDo(get("a.test", "/")); body != "old GET /" || !resp.Close {
		t.Errorf("TLS, during the pass: %q close=%v, want an answer here with Connection: close", body, resp.Close)
	}
	waitReturned(t, done, "PassConnections, once the TLS connection was answered,")
	if n := passed.Load(); n != 1 {
		t.Errorf("passed %d, want 1 (the plain one)", n)
	}
}
