package upstream

import (
	"io"
	"net"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// watchingClient is a Client that notes, each time a wait looks at it
// (Gone: every WatchEvery of a wait), whether the connection's reader was
// given back then.
type watchingClient struct {
	c     *Conn
	looks int
	heldR int // looks that found R still held
}

func (w *watchingClient) Flush() error                      { return nil }
func (w *watchingClient) PassNow() bool                     { return false }
func (w *watchingClient) ParkNow(waited time.Duration) bool { return false }
func (w *watchingClient) Gone() bool {
	w.looks++
	if w.c.R != nil {
		w.heldR++
	}
	return false
}

// A stream's wait for its instance (server-sent events between two
// events) gives the connection's reader back to the pool while it waits,
// and has one again when the instance's next bytes come: the reader the
// caller goes on with is c.R as WaitBody left it, and it reads them whole.
func TestWaitBodyGivesTheReaderBackWhileItWaits(t *testing.T) {
	c, srv := dialedInstance(t)
	w := &watchingClient{c: c}
	c.SetClient(w)
	c.WatchClient()

	io.WriteString(srv, "data: one\n\n")
	if got := readSome(t, c); got != "data: one\n\n" {
		t.Fatalf("first event %q", got)
	}
	const quiet = 3 * WatchEvery / 2
	go func() {
		time.Sleep(quiet)
		io.WriteString(srv, "data: two\n\n")
	}()
	t0 := time.Now()
	if err := c.WaitBody(); err != nil {
		t.Fatalf("WaitBody: %v", err)
	}
	if d := time.Since(t0); d < quiet-10*time.Millisecond {
		t.Fatalf("WaitBody returned after %v, before the instance's next bytes (%v)", d, quiet)
	}
	if c.R == nil {
		t.Fatal("R is nil after WaitBody: the caller has no reader to go on with")
	}
	if w.looks == 0 || w.heldR != 0 {
		t.Fatalf("the wait looked at the client %d times, %d of them with R still held; want at least once, never held",
			w.looks, w.heldR)
	}
	if got := readSome(t, c); got != "data: two\n\n" {
		t.Fatalf("second event %q", got)
	}
	// With bytes buffered, it returns at once and keeps R.
	io.WriteString(srv, "data: three\n\ndata: four\n\n")
	if got := readN(t, c, len("data: three\n\n")); got != "data: three\n\n" {
		t.Fatalf("third event %q", got)
	}
	r := c.R
	if err := c.WaitBody(); err != nil || c.R != r {
		t.Fatalf("WaitBody with bytes buffered: %v, reader kept: %v", err, c.R == r)
	}
}

// dialedInstance dials a Conn to a listener of the test's, and returns it
// with the instance's side of it; both are closed when the test ends.
func dialedInstance(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	addr, accepted := tcptest.AcceptAll(t)
	c, err := NewBackend("s", 0, addr).Dial()
	if err != nil {
		t.Fatal(err)
	}
	srv := (<-accepted).(*net.TCPConn)
	t.Cleanup(func() {
		c.Close()
		srv.Close()
	})
	return c, srv
}

func readSome(t *testing.T, c *Conn) string {
	t.Helper()
	buf := make([]byte, 64)
	c.Socket.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.R.Read(buf)
	if err != nil {
		t.Fatalf("reading the instance: %v", err)
	}
	return string(buf[:n])
}

func readN(t *testing.T, c *Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	c.Socket.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c.R, buf); err != nil {
		t.Fatalf("reading the instance: %v", err)
	}
	return string(buf)
}
