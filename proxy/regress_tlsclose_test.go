package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A parked TLS connection is closed by whoever took it from the parker,
// and a tls.Conn's Close first writes a close_notify, waiting up to 5 s
// for room in the socket. The IdleTimeout sweep closes expired ones on
// the parker's own goroutine (park.go run: closeParked), so one client
// that stopped reading holds up the wake of every other parked
// connection for those 5 s; and one woken after them finds its wait's
// deadline (idleSince + IdleTimeout) gone by: its request is never read,
// and the connection is reset. Before d959a18 a TLS connection was never
// parked: it closed on its own goroutine.
//
// Here the stuck TLS connection comes to be parked with its socket full
// through a flush that timed out (regress_flushpark_test.go); one
// whose last response just filled the socket parks so too (a tls.Conn
// with 2,800,773-2,800,790 bytes unread by its client blocked its Close
// for 5 s on this kernel), so fixing that path alone leaves this one.

// dialSmallRcvbuf dials addr with a 4 KiB receive buffer: a client that
// stops reading is stuck soon after.
func dialSmallRcvbuf(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc
}

// fillUntilStuck asks for path (for host) over w one request at a time,
// reading nothing, until a response cannot be flushed: the connection,
// parked before each request (with parkedBefore others), does not park
// again within 300 ms of it. It returns how many requests it sent. (A
// loaded machine may be that slow to answer one: then the connection
// is not stuck after all.)
func fillUntilStuck(t *testing.T, s *Server, w io.Writer, host, path string, parkedBefore int) (asked int) {
	t.Helper()
	waitParked(t, s, parkedBefore+1)
	for i := 0; i < 2000; i++ {
		if _, err := io.WriteString(w, get(host, path)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		// Answered (flushed in its next wait) and parked again?
		sent := time.Now()
		for time.Since(sent) < 10*time.Millisecond || s.parker.count() != parkedBefore+1 {
			if time.Since(sent) > 300*time.Millisecond {
				t.Logf("the proxy's flush blocked after %d responses", i)
				return i + 1
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatal("the client's buffers never filled")
	return 0
}

// stuckTLSClient opens a TLS connection (HTTP/1.1, a.test) with a small
// receive buffer and fills it with path's responses (fillUntilStuck).
func stuckTLSClient(t *testing.T, f *tlsFixture, path string, parkedBefore int) {
	t.Helper()
	nc := dialSmallRcvbuf(t, f.tlsAddr)
	tc := tls.Client(nc, &tls.Config{RootCAs: f.roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	fillUntilStuck(t, f.srv, tc, "a.test", path, parkedBefore)
}

// TestStuckTLSClientDoesNotStallTheParker: a TLS client that stops reading
// holds up no parked plain client. Written when the stuck connection was
// parked and the parker's goroutine closed it (a close_notify into a full
// socket); since a timed-out flush ends the connection on its own
// goroutine, it no longer reaches the parker, and
// TestParkedTLSCloseDoesNotHoldUpTheParker checks that path directly. This
// one stays for the whole: whatever path the stuck connection takes.
func TestStuckTLSClientDoesNotStallTheParker(t *testing.T) {
	body := strings.Repeat("x", 15000) // a response fits in the 16 KiB writer: it is flushed in the next wait
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.WriteString(w, body)
			return
		}
		fmt.Fprintf(w, "a %s %s", r.Method, r.URL.Path)
	})
	opts := Options{IdleTimeout: 1500 * time.Millisecond}
	opts.parkAfter = 10 * time.Millisecond
	f := startTLSProxy(t, opts, Route{Port: 1, Set: setOf(t, "p", in)},
		Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})

	stuckTLSClient(t, f, "/big", 0)

	// A plain keep-alive client, parked between its requests.
	ctl := dial(t, f.addr)
	ctl.mustDo(get("x", "/"))
	waitParked(t, f.srv, 1)

	// The stuck connection's flush times out within IdleTimeout, and it
	// ends. All the while, the plain client asks every 100 ms: each answer should take
	// milliseconds (a wake from the parker). New idle clients come every
	// 300 ms and stay parked, as on any busy server (with none parked, the
	// parker's goroutine would hand over to a new one at the sweep).
	start := time.Now()
	var worst time.Duration
	for i := 0; time.Since(start) < 4*time.Second; i++ {
		if i%3 == 0 {
			dial(t, f.addr).mustDo(get("x", "/"))
		}
		ctl.c.SetDeadline(time.Now().Add(7 * time.Second))
		t0 := time.Now()
		resp, body, err := ctl.do(get("x", "/ctl"))
		d := time.Since(t0)
		if err != nil || body != "a GET /ctl" || resp.Close {
			t.Fatalf("a parked plain client's request sent %v in: after %v, %q %v; want an answer in milliseconds "+
				"(the parker's goroutine was blocked closing the stuck TLS connection: close_notify into a full socket)",
				t0.Sub(start).Round(time.Millisecond), d.Round(time.Millisecond), body, err)
		}
		worst = max(worst, d)
		time.Sleep(100 * time.Millisecond)
	}
	if worst > 2*time.Second {
		t.Errorf("a parked plain client's request waited %v for an answer: the parker's goroutine was blocked closing the stuck TLS connection (close_notify into a full socket)", worst)
	}
}

// writeGate makes the writes of the connections its listener accepts wait
// while it is shut: a client whose socket is full, for as long as a test
// likes.
type writeGate struct {
	net.Listener
	shut *atomic.Bool
}

func (g writeGate) Accept() (net.Conn, error) {
	nc, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{TCPConn: nc.(*net.TCPConn), shut: g.shut}, nil
}

type gatedConn struct {
	*net.TCPConn
	shut   *atomic.Bool
	closed atomic.Bool // a write to a closed socket fails at once, gate or not
}

func (c *gatedConn) Write(p []byte) (int, error) {
	for c.shut.Load() && !c.closed.Load() {
		time.Sleep(time.Millisecond)
	}
	return c.TCPConn.Write(p)
}

func (c *gatedConn) Close() error {
	c.closed.Store(true)
	return c.TCPConn.Close()
}

// gatedTLSClient serves f's TLS port (2, a.test) on a listener whose
// connections' writes wait while shut is set, and opens an HTTP/1.1
// client to it.
func gatedTLSClient(t *testing.T, f *fixture, shut *atomic.Bool) *client {
	t.Helper()
	cert, roots := selfSigned(t, "a.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shut.Store(false) })
	go f.srv.ServeTLS(writeGate{Listener: ln, shut: shut}, 2, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	tc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return &client{t: t, c: tc, br: bufio.NewReader(tc)}
}

// The IdleTimeout sweep's close of a parked TLS connection whose
// close_notify cannot be written does not hold up the parker: a parked
// plain client's requests are answered at once meanwhile.
func TestParkedTLSCloseDoesNotHoldUpTheParker(t *testing.T) {
	in := startInstance(t, "a", nil)
	// IdleTimeout is well above the plain client's pauses between its
	// requests, which a loaded machine stretches.
	opts := Options{IdleTimeout: time.Second}
	opts.parkAfter = 50 * time.Millisecond
	f := startProxy(t, opts, Route{Port: 1, Set: setOf(t, "p", in)}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
	var shut atomic.Bool
	secure := gatedTLSClient(t, f, &shut)
	secure.mustDo(get("a.test", "/"))
	waitParked(t, f.srv, 1)
	shut.Store(true) // from here its close_notify cannot go out

	// Past the TLS connection's IdleTimeout (1 s and a sweep), a plain
	// client, parked between its requests, asks every 150 ms. New idle
	// ones come as often, so that some are parked at every sweep (with
	// none, the parker's goroutine would end, and the next parking start
	// another). (A parker held up by the close_notify holds the request
	// up till its read deadline: the bound on the answer's time is loose.)
	plain := dial(t, f.addr)
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		dial(t, f.addr).mustDo(get("x", "/"))
		plain.c.SetDeadline(time.Now().Add(5 * time.Second))
		t0 := time.Now()
		resp, body, err := plain.do(get("x", "/"))
		if d := time.Since(t0); err != nil || resp.Close || d > 2*time.Second {
			t.Fatalf("a parked plain client's request %v in: %q %v after %v; want an answer at once (the parker waits for a TLS connection's close_notify)",
				t0.Sub(start).Round(time.Millisecond), body, err, d.Round(time.Millisecond))
		}
		time.Sleep(150 * time.Millisecond)
	}
	shut.Store(false)
	expectClosed(t, secure, "the TLS connection past its IdleTimeout")
}
