package upstream

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// A Client is the proxy's connection to the client an exchange is for.
type Client interface {
	// Flush sends what is held for the client: it must not wait while the
	// proxy waits for the instance.
	Flush() error
	// Gone reports, without blocking, whether the client has closed its
	// connection.
	Gone() bool
	// PassNow reports whether a read of R that would wait for the instance
	// should return ErrPass instead: the response is to go on in another
	// process, from where it stands.
	PassNow() bool
}

// ErrPass is returned by a read of R, before any byte is read, when the
// Client's PassNow said so.
var ErrPass = errors.New("the response goes on in another process")

// ErrFlush wraps a Client's failed Flush, returned by a read of R: the
// client is gone, not the instance.
var ErrFlush = errors.New("flushing to the client")

// ErrClientGone is returned by a read of R, while the client is watched,
// once the client has closed its connection.
var ErrClientGone = errors.New("the client closed its connection")

// watchEvery is how often a read that waits for the instance checks that
// the client is still there: an instance streaming to a client that left
// hears of it (its connection closed) within this.
const watchEvery = 250 * time.Millisecond

// SetClient makes every read of R that would wait for the instance flush cl
// first (nil: none), so that what the proxy holds for its client (a
// response head, a chunk) is never kept back while the instance thinks.
func (c *Conn) SetClient(cl Client) { c.client = cl }

// WatchClient makes reads of R that wait for the instance also check, every
// watchEvery, that the client is still there (for a response body: a
// stream the client abandoned ends then). It lasts until the connection is
// put back or closed.
func (c *Conn) WatchClient() { c.watching = c.client != nil }

// unwatch ends WatchClient, and clears the socket's deadline if one is set.
func (c *Conn) unwatch() {
	c.client, c.watching = nil, false
	if c.armed {
		c.armed = false
		c.TCPConn.SetReadDeadline(time.Time{})
	}
}

// connReader is R's source: the bytes another process read from the
// socket (Adopt), then the socket, after a flush of the client's pending
// bytes, and, when watching, with a deadline that wakes the read to look
// at the client.
type connReader struct {
	c   *Conn
	pre []byte
}

func (r *connReader) Read(p []byte) (int, error) {
	c := r.c
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	if c.client != nil {
		if err := c.client.Flush(); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrFlush, err)
		}
	}
	if c.watching && c.client.PassNow() {
		return 0, ErrPass
	}
	if c.watching && !c.armed {
		c.armed = true
		c.TCPConn.SetReadDeadline(time.Now().Add(watchEvery))
	}
	for {
		n, err := c.rio.Read(p)
		if !c.armed || n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if c.client.Gone() {
			return 0, ErrClientGone
		}
		if c.client.PassNow() {
			return 0, ErrPass
		}
		c.TCPConn.SetReadDeadline(time.Now().Add(watchEvery))
	}
}
