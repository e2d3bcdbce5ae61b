package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"smoothserve/internal/rawio"
	"smoothserve/internal/sendwait"
	"smoothserve/internal/sockpeek"
)

// Conn is a connection to an instance, with its read buffer.
//
// Ownership: whoever took it from the pool (or dialed it) owns it until
// it is put back or closed; while pooled, the Backend's mu guards it.
type Conn struct {
	Socket
	// R reads from the instance. A pooled connection idle for a while
	// gives it back (rest: nil then, holding nothing by construction);
	// whoever takes the connection from the pool gets it with one.
	R      *bufio.Reader
	Reused bool // taken from the idle pool, not freshly dialed

	src      connReader // what R reads from
	client   Client     // the proxy's client connection this exchange is for (SetClient)
	watching bool       // WatchClient or WatchGone: a blocking read checks that the client is still there
	passable bool       // WatchClient: and asks whether the response is to go on in another process
	headBy   time.Time  // WatchGone's: when the answer's head is due; zero: no limit
	armed    bool       // a watch deadline is set on the socket
	watchAt  time.Time  // when, armed
	lastRead int        // bytes the last read of the socket brought (LastRead)

	raw      syscall.RawConn
	peekFn   func(fd uintptr) bool // allocated once: RawConn.Read takes a func
	peekDead bool
	sw       sendwait.Sender // WriteRequest's
	rio      rawio.Conn      // R's reads, and Write (rawio)
	// takenAt is when Get or Dial handed it out, to carry a request at
	// once. The instance's idle clock starts after that, once it has
	// written its response, so Put counts c idle from takenAt — not from
	// when the proxy got round to reading the end of the response, which
	// on a saturated machine can be a good while later: a request that
	// cannot be sent again must not meet the instance's idle close (Get's
	// maxIdle).
	takenAt   time.Time
	idleSince time.Time // when it was last put back in the pool: its takenAt
	sweeps    int       // sweeps it sat through in the pool since it was last put back (idleTimeout)
}

// Socket is a TCP connection to an instance: one this process dialed
// (*net.TCPConn), or one another process passed (connpass: a
// *sockconn.Conn, which it makes in one system call, and three more at
// its first use, where net.FileConn takes fifteen).
type Socket interface {
	net.Conn
	CloseWrite() error
	SyscallConn() (syscall.RawConn, error)
}

// readBufSize holds any normal response head, and is a good copy unit.
const readBufSize = 16 << 10

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// DialTimeout bounds a connect to an instance; on loopback a connect either
// succeeds or is refused at once, so a long wait means something is wrong.
const DialTimeout = 3 * time.Second

var dialer = net.Dialer{Timeout: DialTimeout, KeepAlive: -1}

// ErrDial wraps failures to connect: nothing was sent, so any request may go
// to another instance.
var ErrDial = errors.New("connect to instance")

// Get returns an idle connection to b that is still open, or a new one.
// Every idle connection is checked before it is handed out (alive): one the
// instance closed while it sat in the pool (instances close idle
// connections after a few seconds: Node after 5, gunicorn after 2) leaves
// the pool then, and one the instance wrote to unasked is never reused.
//
// maxIdle > 0 takes only a connection idle for less than that: for a
// request that cannot be sent again, an instance closing the connection
// for its idle timeout just as the request goes out would lose it, and no
// instance's idle timeout is that short.
func (b *Backend) Get(maxIdle time.Duration) (*Conn, error) {
	for {
		c := b.getIdle(maxIdle)
		if c == nil {
			break
		}
		if c.alive() {
			c.Reused = true
			c.wake()
			c.takenAt = time.Now()
			return c, nil
		}
		c.Close()
	}
	return b.Dial()
}

// Dial returns a new connection to b, bypassing the pool: for a request
// sent again after a pooled connection turned out closed.
func (b *Backend) Dial() (*Conn, error) {
	nc, err := dialApart(b.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w %s#%d at %s: %w", ErrDial, b.Service, b.Slot, b.Addr, err)
	}
	c, err := newConn(nc.(*net.TCPConn)) // what a TCP dial returns
	if err != nil {
		return nil, fmt.Errorf("%w %s#%d at %s: %w", ErrDial, b.Service, b.Slot, b.Addr, err)
	}
	c.takenAt = time.Now()
	return c, nil
}

// dialApart dials addr on a goroutine of its own. net's dial goes about
// 5.6 KB deep, more than any other path of a request: made on the
// connection's goroutine, it would double that goroutine's stack (4 to 8
// KiB) for as long as the goroutine lives, and with thousands of busy
// connections that is tens of MB. A goroutine of its own gives its stack
// back when the dial is done. Dials are rare (the pool); the goroutine, its
// channel and its result cost three allocations more than a dial in place.
func dialApart(addr string) (net.Conn, error) {
	type dialed struct {
		nc  net.Conn
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		nc, err := dialer.Dial("tcp", addr)
		ch <- dialed{nc, err}
	}()
	d := <-ch
	return d.nc, d.err
}

func newConn(s Socket) (*Conn, error) {
	c := &Conn{Socket: s}
	var err error
	if c.raw, err = s.SyscallConn(); err != nil {
		s.Close()
		return nil, err
	}
	c.peekFn = c.peek
	c.sw.Init(c.raw)
	c.rio.Init(c.raw)
	c.src.c = c
	c.R = readerPool.Get().(*bufio.Reader)
	c.R.Reset(&c.src)
	return c, nil
}

// Write writes p to the instance as the Socket's Write does, with the
// system calls made raw (internal/rawio).
func (c *Conn) Write(p []byte) (int, error) { return c.rio.Write(p) }

// AddIdle pools a connection to b that another process (connpass) made and
// left idle, as if this one had dialed and used it; like every pooled
// connection, it is checked (alive) before it is used.
func (b *Backend) AddIdle(s Socket) {
	if c, err := newConn(s); err == nil {
		b.put(c, time.Time{}) // idle since the other process left it: long, for all we know; pooled now
	}
}

// Adopt makes a Conn of a connection to an instance that another process
// (connpass) was using, in the middle of a response or a tunnel; R reads
// buffered (what that process had read and not used) first. On failure s
// is closed.
func Adopt(s Socket, buffered []byte) (*Conn, error) {
	c, err := newConn(s)
	if err != nil {
		return nil, err
	}
	c.src.pre = buffered
	// Its request went out in the other process, when is not known: put
	// back, it counts as long idle (as AddIdle's), never as idle from now.
	c.takenAt = longAgo
	return c, nil
}

// longAgo is the takenAt of a connection another process was using.
var longAgo = time.Unix(0, 0)

// Unread is what R holds and the socket has not been asked for again: the
// bytes read from the instance and not yet used, for another process to
// use first (connpass). It leaves them in R.
func (c *Conn) Unread() []byte {
	b, _ := c.R.Peek(c.R.Buffered())
	if len(c.src.pre) > 0 {
		b = append(b[:len(b):len(b)], c.src.pre...)
	}
	return b
}

// restAfter is how long a pooled connection idles before it gives its
// reader back (Backend.sweep): one taken again soon, as under load, keeps
// it, so that a request costs no trip to the reader pool.
const restAfter = time.Second

// rest gives R back to the pool while the connection idles in it: a
// pooled connection has nothing buffered (alive checks), so nothing is
// lost. wake gives it one again.
func (c *Conn) rest() {
	c.R.Reset(nil)
	readerPool.Put(c.R)
	c.R = nil
}

func (c *Conn) wake() {
	if c.R == nil {
		c.R = readerPool.Get().(*bufio.Reader)
		c.R.Reset(&c.src)
	}
}

// Rest gives R, empty, back to the pool, as WaitReadable does while it
// waits, for a tunnel or a stream left without a goroutine while it is
// quiet (proxy's parker); Wake gives it one again. R is nil in between: only Close and
// Wake may be called then.
func (c *Conn) Rest() {
	if c.R != nil {
		c.rest()
	}
}

// Wake gives a Conn that Rest left without R one again.
func (c *Conn) Wake() { c.wake() }

// WaitReadable waits, with R empty, until the instance's socket has bytes
// to read, or is closed, or its read deadline passes (the error then), and
// gives R back to the pool meanwhile (rawio's WaitReadable): a quiet
// tunnel holds no buffer. R is there again when it returns.
func (c *Conn) WaitReadable() error {
	if c.R.Buffered() > 0 || len(c.src.pre) > 0 {
		return nil
	}
	c.rest()
	err := c.rio.WaitReadable()
	c.wake()
	return err
}

// WriteRequest writes p, a request whole, and returns once the instance's
// answer has begun to come (or the connection closed): the read of R that
// follows finds it at once, instead of finding nothing first and waiting
// (sendwait). Only for a read of R that would not flush the client first:
// the wait here does not. R, empty, goes back to the pool for the wait: a
// request the instance takes its time over holds no buffer meanwhile.
//
// A pooled connection idle for recheckIdle or more is looked at again in
// the wait, before the write (sendwait.SendQuiet): the instance's close
// for its idle timeout may come just after Get looked, and would then
// raise nothing in the wait. Found closed, nothing is sent
// (ErrStaleNotSent). One idle for less was used a moment ago: no instance
// closes a connection that soon for idleness.
func (c *Conn) WriteRequest(p []byte) error {
	if c.R != nil && c.R.Buffered() == 0 && len(c.src.pre) == 0 {
		c.rest()
	}
	var n int
	var err error
	if c.Reused && c.takenAt.Sub(c.idleSince) >= recheckIdle {
		n, err = c.sw.SendQuiet(p)
	} else {
		n, err = c.sw.Send(p)
	}
	if err == nil && n == len(p) && c.armed && !time.Now().Before(c.watchAt) {
		// The wait ended at the watch's deadline, likely: it goes on
		// here, R still at rest (the caller's buffers too), looking at
		// the client at each deadline.
		err = c.waitWatched()
	}
	c.wake()
	if errors.Is(err, sendwait.ErrNotQuiet) {
		return ErrStaleNotSent
	}
	if err == nil && n < len(p) {
		_, err = c.rio.Write(p[n:])
	}
	return err
}

// recheckIdle is how long a pooled connection idles before WriteRequest
// looks at it again: far below any instance's idle timeout (Node 5 s,
// gunicorn 2 s), far above the gaps between requests under load.
const recheckIdle = 20 * time.Millisecond

// ErrStaleNotSent is WriteRequest's failure when the pooled connection
// turned out closed (or written to unasked) just before the write: nothing
// was sent, so any request, idempotent or not, may go on another
// connection.
var ErrStaleNotSent = errors.New("the instance had closed the pooled connection; nothing was sent")

// Close closes the connection and recycles its buffer.
func (c *Conn) Close() error {
	if c.R != nil {
		c.R.Reset(nil)
		readerPool.Put(c.R)
		c.R = nil
	}
	return c.Socket.Close()
}

// alive reports whether an idle connection can carry a request: the instance
// has not closed it and sent nothing unasked. Checking costs one non-blocking
// recv, and saves a request that would otherwise be written into a
// connection the instance already closed (it could not be retried if it is
// not idempotent).
func (c *Conn) alive() bool {
	if c.R != nil && c.R.Buffered() > 0 {
		return false
	}
	c.peekDead = true
	if err := c.raw.Read(c.peekFn); err != nil {
		return false
	}
	return !c.peekDead
}

func (c *Conn) peek(fd uintptr) bool {
	// Quiet: the connection is open and nothing came. Anything else is EOF,
	// unasked-for bytes, or an error: all dead.
	c.peekDead = sockpeek.FD(fd) != sockpeek.Quiet
	return true
}
