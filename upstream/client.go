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
	// ParkNow reports whether WaitBody, which has waited for the instance
	// for waited, should return ErrPark: the response is to wait on
	// without a goroutine (the proxy's parker), from where it stands.
	ParkNow(waited time.Duration) bool
}

// ErrPass is returned by a read of R, before any byte is read, when the
// Client's PassNow said so.
var ErrPass = errors.New("the response goes on in another process")

// ErrPark is returned by WaitBody, nothing read, when the Client's
// ParkNow said so. R is there, empty.
var ErrPark = errors.New("the response waits on without a goroutine")

// ErrFlush wraps a Client's failed Flush, returned by a read of R: the
// client is gone, not the instance.
var ErrFlush = errors.New("flushing to the client")

// ErrClientGone is returned by a read of R, while the client is watched,
// once the client has closed its connection.
var ErrClientGone = errors.New("the client closed its connection")

// WatchEvery is how often a read that waits for the instance checks that
// the client is still there: an instance streaming to a client that left
// hears of it (its connection closed) within this.
const WatchEvery = 250 * time.Millisecond

// SetClient makes every read of R that would wait for the instance flush cl
// first, so that what the proxy holds for its client (a response head, a
// chunk) is never kept back while the instance thinks. nil: none, and no
// watch either (a tunnel's reads wait as long as they must).
func (c *Conn) SetClient(cl Client) {
	if cl == nil {
		c.unwatch()
		return
	}
	c.client = cl
}

// WatchClient makes reads of R that wait for the instance also check, every
// WatchEvery, that the client is still there (for a response body: a
// stream the client abandoned ends then), and whether the response is to
// go on in another process (PassNow). It lasts until the connection is put
// back or closed.
func (c *Conn) WatchClient() {
	c.watching, c.passable, c.headBy = c.client != nil, c.client != nil, time.Time{}
}

// WatchGone is WatchClient for the wait for a response head: the client is
// looked at (a request whose client left ends, the instance's connection
// closed, as nginx's 499), but the response is not passed on from there;
// and an answer that has not begun within limit (zero: no limit) fails
// the read with ErrNoAnswer. The watch's deadline is set now, so that
// WriteRequest's wait for the answer wakes at it too.
func (c *Conn) WatchGone(limit time.Duration) {
	if c.client == nil {
		return
	}
	c.watching = true
	if limit > 0 && c.headBy.IsZero() {
		c.headBy = time.Now().Add(limit)
	}
	if !c.armed {
		c.arm()
	}
}

// ErrNoAnswer is a read's failure, while WatchGone's limit was set, once
// the instance has not begun its answer in time. It is a timeout
// (os.ErrDeadlineExceeded).
var ErrNoAnswer = fmt.Errorf("the instance did not begin its answer within response_header_timeout: %w", os.ErrDeadlineExceeded)

// unwatch ends WatchClient, and clears the socket's deadline if one is set.
func (c *Conn) unwatch() {
	c.client, c.watching, c.passable, c.headBy = nil, false, false, time.Time{}
	if c.armed {
		c.armed = false
		c.Socket.SetReadDeadline(time.Time{})
	}
}

// LastRead is how many bytes the last read of the instance's socket
// brought: a stream's pieces are small, a download's as large as the
// reader asks for.
func (c *Conn) LastRead() int { return c.lastRead }

// WaitBody waits, R empty, until the instance's socket has bytes to read
// or is closed, as a read of R would, but outside R: its caller may give
// back what it holds for the wait (proxy's awaitBody), and R, empty, goes
// back to the pool meanwhile, as in WaitReadable: a quiet stream (server-
// sent events between two events) holds no buffer. R is there again when
// it returns, but may be another *bufio.Reader: the caller reads c.R, not
// one it kept from before. The client's pending bytes are flushed first,
// and, when watching, the client looked at every WatchEvery
// (ErrClientGone, ErrPass, as from a read of R, and ErrPark; R is nil
// while they are asked). The read of R that follows finds bytes, or the
// end, without waiting.
func (c *Conn) WaitBody() error {
	if c.R.Buffered() > 0 || len(c.src.pre) > 0 {
		return nil
	}
	if err := c.beforeWait(); err != nil {
		return err
	}
	c.rest()
	defer c.wake()
	began := time.Now() // for ParkNow; a watch deadline may have expired before the wait (a stream taken up again)
	for {
		// Strict: a reset the look finds is the read's error, not an end
		// (a body up to the close would end there, cleanly).
		err := c.rio.WaitReadableStrict()
		if !c.armed || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if err := c.watched(); err != nil {
			return err
		}
		if c.client.ParkNow(time.Since(began)) {
			return ErrPark
		}
	}
}

// beforeWait readies a wait for the instance: the client's pending bytes
// flushed, and, when watching, PassNow asked and the watch's deadline set.
func (c *Conn) beforeWait() error {
	if c.client != nil {
		if err := c.client.Flush(); err != nil {
			return fmt.Errorf("%w: %w", ErrFlush, err)
		}
	}
	if c.passable && c.client.PassNow() {
		return ErrPass
	}
	if c.watching && !c.armed {
		c.arm()
	}
	return nil
}

// watched is what a wait whose watch deadline passed finds: the client
// gone, the response to be passed on, or nothing (the deadline set again:
// wait on).
func (c *Conn) watched() error {
	if c.client.Gone() {
		return ErrClientGone
	}
	if !c.headBy.IsZero() && !time.Now().Before(c.headBy) {
		return ErrNoAnswer
	}
	if c.passable && c.client.PassNow() {
		return ErrPass
	}
	c.arm()
	return nil
}

// arm sets the watch's next deadline, WatchEvery from now.
func (c *Conn) arm() {
	c.armed, c.watchAt = true, time.Now().Add(WatchEvery)
	c.Socket.SetReadDeadline(c.watchAt)
}

// waitWatched waits, R at rest, until the socket is readable or closed (a
// read then finds what there is, or the error), looking at the client at
// each watch deadline: ErrClientGone, ErrNoAnswer, as from a read of R.
func (c *Conn) waitWatched() error {
	for {
		if err := c.watched(); err != nil {
			return err
		}
		if err := c.rio.WaitReadableStrict(); !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
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
	if err := c.beforeWait(); err != nil {
		return 0, err
	}
	for {
		n, err := c.rio.Read(p)
		if !c.armed || n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			c.lastRead = n
			return n, err
		}
		if err := c.watched(); err != nil {
			return 0, err
		}
	}
}
