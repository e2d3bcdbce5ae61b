package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a connection to an instance, with its read buffer.
type Conn struct {
	*net.TCPConn
	R      *bufio.Reader
	Reused bool // taken from the idle pool, not freshly dialed

	raw       syscall.RawConn
	peekFn    func(fd uintptr) bool // allocated once: RawConn.Read takes a func
	peekDead  bool
	idleSince time.Time // when it was put back in the pool
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
func (b *Backend) Get() (*Conn, error) {
	for {
		c := b.getIdle()
		if c == nil {
			break
		}
		if time.Since(c.idleSince) < trustIdle || c.alive() {
			c.Reused = true
			return c, nil
		}
		c.Close()
	}
	nc, err := dialer.Dial("tcp", b.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w %s#%d at %s: %w", ErrDial, b.Service, b.Slot, b.Addr, err)
	}
	c, err := newConn(nc.(*net.TCPConn))
	if err != nil {
		return nil, fmt.Errorf("%w %s#%d at %s: %w", ErrDial, b.Service, b.Slot, b.Addr, err)
	}
	return c, nil
}

func newConn(tc *net.TCPConn) (*Conn, error) {
	c := &Conn{TCPConn: tc}
	var err error
	if c.raw, err = tc.SyscallConn(); err != nil {
		tc.Close()
		return nil, err
	}
	c.peekFn = c.peek
	c.R = readerPool.Get().(*bufio.Reader)
	c.R.Reset(tc)
	return c, nil
}

// AddIdle pools a connection to b that another process (connpass) made and
// left idle, as if this one had dialed and used it. When it went idle is
// not known: it is checked (alive) before its first use.
func (b *Backend) AddIdle(tc *net.TCPConn) {
	if c, err := newConn(tc); err == nil {
		b.put(c, time.Time{})
	}
}

// Close closes the connection and recycles its buffer.
func (c *Conn) Close() error {
	if c.R != nil {
		c.R.Reset(nil)
		readerPool.Put(c.R)
		c.R = nil
	}
	return c.TCPConn.Close()
}

// trustIdle is how long a pooled connection is used without checking that
// the instance has not closed it. Instances close idle connections only
// after their own idle timeout (far longer), and one that dies has its
// pool closed by the supervisor at once; checking every connection would
// cost a system call per request.
const trustIdle = time.Second

// alive reports whether an idle connection can carry a request: the instance
// has not closed it and sent nothing unasked. Checking costs one non-blocking
// recv, and saves a request that would otherwise be written into a
// connection the instance already closed (it could not be retried if it is
// not idempotent).
func (c *Conn) alive() bool {
	if c.R.Buffered() > 0 {
		return false
	}
	c.peekDead = true
	if err := c.raw.Read(c.peekFn); err != nil {
		return false
	}
	return !c.peekDead
}

func (c *Conn) peek(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	// EAGAIN: nothing to read, the connection is open and quiet. Anything
	// else is EOF (0 bytes), unasked-for bytes, or an error: all dead.
	c.peekDead = errno != syscall.EAGAIN
	return true
}
