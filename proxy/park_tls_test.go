package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Parking over TLS (parkconn.go's parkable): a tls.Conn's state stays with the
// connection, and one parked with part of a record read goes on when the
// rest comes.

// splitConn, when armed, holds its next write (a TLS record) back, and
// sends it with the first bytes of the one after it, in one write; the
// rest of that when hold is closed: a request, and the next one's record
// in two pieces with the connection's wait between them.
type splitConn struct {
	net.Conn
	mu    sync.Mutex
	armed int // 2: the next write is held back; 1: then this one is split
	held  []byte
	hold  chan struct{}
}

// arm splits the record after the next one, its rest held until hold is
// closed.
func (s *splitConn) arm(hold chan struct{}) {
	s.mu.Lock()
	s.armed, s.hold = 2, hold
	s.mu.Unlock()
}

func (s *splitConn) Write(b []byte) (int, error) {
	s.mu.Lock()
	switch {
	case s.armed == 2:
		s.held, s.armed = append([]byte(nil), b...), 1
		s.mu.Unlock()
		return len(b), nil
	case s.armed == 1 && len(b) > 8:
		first, hold := append(s.held, b[:8]...), s.hold
		s.held, s.armed = nil, 0
		s.mu.Unlock()
		if _, err := s.Conn.Write(first); err != nil {
			return 0, err
		}
		<-hold
		n, err := s.Conn.Write(b[8:])
		return 8 + n, err
	}
	s.mu.Unlock()
	return s.Conn.Write(b)
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

	// A record whose first bytes come before the connection parks and the
	// rest after: parked with part of it read. The first bytes go with the
	// request before it, so they are in before the wait begins (sent after
	// its answer, a loaded machine's client could send them after the
	// connection had parked); the rest once it is parked.
	hold := make(chan struct{})
	var once sync.Once
	letRestGo := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(letRestGo) // before the client's Close, which waits for the write
	sc.arm(hold)
	io.WriteString(cl.c, get("a.test", "/3")) // held back
	sent := make(chan error, 1)
	go func() {
		_, err := io.WriteString(cl.c, get("a.test", "/split")) // /3, and the first bytes of this
		sent <- err
	}()
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatalf("before the split record: %v", err)
	}
	if body, _ := io.ReadAll(resp.Body); string(body) != "a GET /3" {
		t.Fatalf("before the split record: %q", body)
	}
	waitParked(t, f.srv, 1) // with half a record read
	letRestGo()
	resp, err = http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatalf("a record in two pieces across parking: %v", err)
	}
	if body, _ := io.ReadAll(resp.Body); string(body) != "a GET /split" || resp.Close {
		t.Fatalf("a record in two pieces across parking: %q close=%v", body, resp.Close)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
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
