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
type Conn struct {
	f      *os.File
	raw    rawConn  // f's, with net's errors
	remote net.Addr // nil when the peer was gone already
	closed atomic.Bool

	mu    sync.Mutex // for local
	local net.Addr
}

// New makes a Conn of fd, a connected, non-blocking TCP socket (one a Go
// process had: Go makes its sockets non-blocking). It owns fd from now on.
func New(fd int) (*Conn, error) {
	// Only a non-blocking descriptor is registered with the poller, and
	// only a registered one takes deadlines: else reads would block a
	// thread, past every deadline. Already so, this is one fcntl.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("sockconn: descriptor %d: %w", fd, os.NewSyscallError("fcntl", err))
	}
	f := os.NewFile(uintptr(fd), "passed-connection")
	if f == nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("sockconn: descriptor %d is not valid", fd)
	}
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("sockconn: descriptor %d is not in the poller: %w", fd, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sockconn: %w", err)
	}
	c := &Conn{f: f}
	c.raw = rawConn{rc: rc, c: c}
	var sa syscall.Sockaddr
	var serr error
	if err := rc.Control(func(fd uintptr) { sa, serr = syscall.Getpeername(int(fd)) }); err == nil && serr == nil {
		c.remote = tcpAddr(sa)
	}
	// A peer that is gone (ENOTCONN) leaves no address; the connection is
	// still served, and reads its end.
	return c, nil
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
	n, err := c.f.Read(p)
	return n, c.opErr("read", err)
}

func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	return n, c.opErr("write", err)
}

// Close closes the socket.
func (c *Conn) Close() error {
	c.closed.Store(true) // before: what Close ends sees it (opErr)
	return c.opErr("close", c.f.Close())
}

// CloseWrite shuts the socket's sending side (a FIN), as
// net.TCPConn.CloseWrite does.
func (c *Conn) CloseWrite() error {
	var serr error
	if err := c.raw.rc.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_WR) }); err != nil {
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
	return c.opErr("set", c.f.SetDeadline(t))
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.opErr("set", c.f.SetReadDeadline(t))
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.opErr("set", c.f.SetWriteDeadline(t))
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

// rawConn is an os.File's RawConn with net's errors (opErr).
type rawConn struct {
	rc syscall.RawConn
	c  *Conn
}

func (r *rawConn) Control(f func(fd uintptr)) error { return r.err("raw-control", r.rc.Control(f)) }
func (r *rawConn) Read(f func(fd uintptr) bool) error {
	return r.err("raw-read", r.rc.Read(f))
}
func (r *rawConn) Write(f func(fd uintptr) bool) error {
	return r.err("raw-write", r.rc.Write(f))
}

func (r *rawConn) err(op string, err error) error { return r.c.opErr(op, err) }
