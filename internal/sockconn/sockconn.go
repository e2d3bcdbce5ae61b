package sockconn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is a connected TCP socket passed from another process.
//
// Ownership: until its first use that needs Go's poller (poll), the
// descriptor is fd, under reg; from then on file's, and fd is -1. Close
// before that closes fd (under reg too).
type Conn struct {
	remote net.Addr    // nil when the peer was gone already
	closed atomic.Bool // Close was called (opErr)

	reg  sync.RWMutex // guards fd: Control holds it shared, poll and Close alone
	fd   int          // the descriptor while not in the poller; -1 once it is, or closed
	file atomic.Pointer[os.File]
	raw  rawConn

	mu    sync.Mutex // for local
	local net.Addr
}

// New makes a Conn of fd, a connected TCP socket. It owns fd from now on.
// It asks only the peer's address: the descriptor goes into Go's poller
// (poll) when it is first read, written or given a deadline, so a
// connection passed to be parked at once (an idle client's, most of an
// upgrade's thousands) and passed on or closed from there never costs the
// poller's registration and removal.
func New(fd int) (*Conn, error) {
	sa, err := syscall.Getpeername(fd)
	if err == syscall.EBADF {
		return nil, fmt.Errorf("sockconn: descriptor %d is not valid", fd)
	}
	c := &Conn{fd: fd}
	c.raw.c = c
	if err == nil {
		c.remote = tcpAddr(sa)
	}
	// A peer that is gone (ENOTCONN) leaves no address; the connection is
	// still served, and reads its end.
	return c, nil
}

// poll is the descriptor as an os.File in Go's poller, made so the first
// time: what reads, writes and deadlines need.
func (c *Conn) poll() (*os.File, error) {
	if f := c.file.Load(); f != nil {
		return f, nil
	}
	c.reg.Lock()
	defer c.reg.Unlock()
	if f := c.file.Load(); f != nil {
		return f, nil
	}
	if c.fd < 0 {
		return nil, net.ErrClosed
	}
	// Only a non-blocking descriptor is registered with the poller, and
	// only a registered one takes deadlines: else reads would block a
	// thread, past every deadline. Already so (a Go process had it), this
	// is one fcntl.
	if err := syscall.SetNonblock(c.fd, true); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(c.fd), "passed-connection")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		c.fd = -1
		return nil, fmt.Errorf("sockconn: the descriptor is not in the poller: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		c.fd = -1
		return nil, err
	}
	c.raw.rc = rc
	c.fd = -1
	c.file.Store(f)
	return f, nil
}

// tcpAddr is sa as a *net.TCPAddr, or nil if it is not an inet one.
func tcpAddr(sa syscall.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		zone := ""
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port, Zone: zone}
	}
	return nil
}

func (c *Conn) Read(p []byte) (int, error) {
	f, err := c.poll()
	if err != nil {
		return 0, c.opErr("read", err)
	}
	n, err := f.Read(p)
	return n, c.opErr("read", err)
}

func (c *Conn) Write(p []byte) (int, error) {
	f, err := c.poll()
	if err != nil {
		return 0, c.opErr("write", err)
	}
	n, err := f.Write(p)
	return n, c.opErr("write", err)
}

// Close closes the socket.
func (c *Conn) Close() error {
	c.closed.Store(true) // before: what Close ends sees it (opErr)
	c.reg.Lock()
	if f := c.file.Load(); f != nil { // in the poller: the File closes it
		c.reg.Unlock()
		return c.opErr("close", f.Close())
	}
	defer c.reg.Unlock()
	if c.fd < 0 {
		return c.opErr("close", net.ErrClosed)
	}
	err := syscall.Close(c.fd)
	c.fd = -1
	if err != nil {
		return c.opErr("close", os.NewSyscallError("close", err))
	}
	return nil
}

// CloseWrite shuts the socket's sending side (a FIN), as
// net.TCPConn.CloseWrite does.
func (c *Conn) CloseWrite() error {
	var serr error
	if err := c.raw.control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_WR) }); err != nil {
		return c.opErr("close", err)
	}
	if serr != nil {
		return c.opErr("close", os.NewSyscallError("shutdown", serr))
	}
	return nil
}

// RemoteAddr is the peer's address when the Conn was made (nil if the
// peer was gone then).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is the socket's own address, asked the first time (not
// asked before a Close, it is nil after).
func (c *Conn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local == nil {
		var sa syscall.Sockaddr
		var serr error
		if err := c.raw.Control(func(fd uintptr) { sa, serr = syscall.Getsockname(int(fd)) }); err == nil && serr == nil {
			c.local = tcpAddr(sa)
		}
	}
	return c.local
}

func (c *Conn) SetDeadline(t time.Time) error {
	return c.setDeadline(t, (*os.File).SetDeadline)
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, (*os.File).SetReadDeadline)
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, (*os.File).SetWriteDeadline)
}

// setDeadline sets a deadline with set. No deadline on a descriptor not
// yet in the poller is what it has: nothing to do, unless it is closed.
func (c *Conn) setDeadline(t time.Time, set func(*os.File, time.Time) error) error {
	if t.IsZero() && c.file.Load() == nil {
		c.reg.RLock()
		open := c.fd >= 0 || c.file.Load() != nil
		c.reg.RUnlock()
		if !open {
			return c.opErr("set", net.ErrClosed)
		}
		return nil
	}
	f, err := c.poll()
	if err != nil {
		return c.opErr("set", err)
	}
	return c.opErr("set", set(f, t))
}

// SyscallConn is the socket's RawConn, its errors as net's.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return &c.raw, nil }

// opErr makes err (an os.File's) what a net.Conn's would be. Some of the
// file's errors for a closed one (its deadlines': poll's "use of closed
// file") are not os.ErrClosed, so Close marks the Conn closed.
func (c *Conn) opErr(op string, err error) error {
	switch {
	case err == nil || err == io.EOF:
		return err
	case c.closed.Load():
		err = net.ErrClosed
	default:
		err = netErr(err)
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: c.remote, Err: err}
}

// netErr unwraps an os.File's *os.PathError, and makes a closed file's
// error net.ErrClosed.
func netErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

// rawConn is the socket's RawConn with net's errors (opErr): Control on
// the descriptor as it is, Read and Write in the poller.
type rawConn struct {
	rc syscall.RawConn // the os.File's, once in the poller
	c  *Conn
}

func (r *rawConn) Control(f func(fd uintptr)) error { return r.err("raw-control", r.control(f)) }

// control calls f with the descriptor, which stays open meanwhile: the
// poller's RawConn does that once it is there, reg before. So f must not
// use the Conn (a read, a write, a deadline, Close, another Control):
// before the poller, that would wait for reg, held by this very call.
func (r *rawConn) control(f func(fd uintptr)) error {
	if r.c.file.Load() == nil {
		r.c.reg.RLock()
		if r.c.file.Load() == nil {
			defer r.c.reg.RUnlock()
			if r.c.fd < 0 {
				return net.ErrClosed
			}
			f(uintptr(r.c.fd))
			return nil
		}
		r.c.reg.RUnlock()
	}
	return r.rc.Control(f)
}

func (r *rawConn) Read(f func(fd uintptr) bool) error {
	if _, err := r.c.poll(); err != nil {
		return r.err("raw-read", err)
	}
	return r.err("raw-read", r.rc.Read(f))
}

func (r *rawConn) Write(f func(fd uintptr) bool) error {
	if _, err := r.c.poll(); err != nil {
		return r.err("raw-write", err)
	}
	return r.err("raw-write", r.rc.Write(f))
}

func (r *rawConn) err(op string, err error) error { return r.c.opErr(op, err) }
