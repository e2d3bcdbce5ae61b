package rawio

import (
	"io"
	"os"
	"syscall"
)

// Conn reads and writes one socket. Init it before use; do not copy it
// (Init binds its state to its address).
//
// Ownership: one Read and one Write at a time, which may run at once
// (each has its own state). Unlike a net.Conn's, two Reads (or two
// Writes) at once are not made to take turns: the second would overwrite
// the first's state. Each user (a connection's serving goroutine) is the
// only reader, and the only writer, of its Conn.
type Conn struct {
	_   noCopy
	raw syscall.RawConn
	r   op // Read's
	w   op // Write's
}

// op is one Read's or Write's state, which the function RawConn calls
// works on: a func value made once (Init), so that a call allocates
// nothing.
type op struct {
	fn     func(fd uintptr) bool
	p      []byte
	n      int
	err    syscall.Errno // the call's error; 0: none
	strict bool          // WaitReadableStrict: an error the peek finds is the call's
}

// noCopy makes go vet's copylocks check report a copied Conn.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Init makes c read and write raw's socket.
func (c *Conn) Init(raw syscall.RawConn) {
	c.raw = raw
	c.r.fn = c.r.read
	c.w.fn = c.w.write
}

// Read reads into p what the socket has, waiting until it has something,
// as net.Conn's Read does. Its errors: io.EOF once the peer closed; the
// call's as an *os.SyscallError ("read: connection reset by peer": no
// addresses, unlike net's); the poller's (the read deadline passed, the
// socket closed) as RawConn gives them, a *net.OpError ("raw-read")
// wrapping os.ErrDeadlineExceeded or net.ErrClosed. A Read of nothing is
// 0, nil at once.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.do(&c.r, p, false, "read")
	if n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// Write writes all of p, waiting while the socket's buffer is full, as
// net.Conn's Write does; on an error (as Read's, "write" and
// "raw-write"), what was written before it.
func (c *Conn) Write(p []byte) (int, error) { return c.do(&c.w, p, true, "write") }

// do runs o on p in the poller's read or write wait.
func (c *Conn) do(o *op, p []byte, write bool, name string) (int, error) {
	o.p, o.n, o.err = p, 0, 0
	var err error
	if write {
		err = c.raw.Write(o.fn)
	} else {
		err = c.raw.Read(o.fn)
	}
	n := o.n
	if err == nil && o.err != 0 {
		err = os.NewSyscallError(name, o.err)
	}
	o.p = nil
	return n, err
}

// WaitReadable waits, within the read deadline, until the socket has
// bytes to read, the peer closed it or it is in error, and reads nothing:
// the Read that follows finds what there is. It peeks once; if that finds
// nothing it waits for the poller and returns when the poller says
// readable, without looking again (the Read looks: on a rare wake with
// nothing there it waits on, as any Read). Its errors are the poller's,
// as Read's. A reset the peek finds is cleared by it: the Read that
// follows says io.EOF, not ECONNRESET (one that comes during the wait
// stays for the Read).
func (c *Conn) WaitReadable() error {
	_, err := c.do(&c.r, nil, false, "read")
	return err
}

// WaitReadableStrict is WaitReadable, but an error the peek finds (a
// reset) is its error, as Read's would be ("read: connection reset by
// peer"), not left cleared: for a caller to whom the Read's io.EOF after
// it would mean a clean end (a response body that ends at the close).
func (c *Conn) WaitReadableStrict() error {
	c.r.strict = true
	_, err := c.do(&c.r, nil, false, "read")
	c.r.strict = false
	return err
}

// read is RawConn.Read's function: true once it read or failed, false to
// wait for the socket to be readable. With no o.p (WaitReadable) its first
// call peeks (o.n counts the calls), and its next, after the poller's
// wait, is true at once.
func (o *op) read(fd uintptr) bool {
	if o.p == nil {
		if o.n++; o.n > 1 {
			return true
		}
		var b [1]byte
		for {
			switch _, e := Peek(fd, b[:]); e {
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				if o.strict {
					o.err = e // 0: none
				}
				return true
			}
		}
	}
	for {
		n, e := sysRead(fd, o.p)
		switch e {
		case 0:
			o.n = n
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			o.err = e
			return true
		}
	}
}

// write is RawConn.Write's function: true once all of o.p is written or
// it failed, false to wait for room.
func (o *op) write(fd uintptr) bool {
	n, e := WriteSome(fd, o.p[o.n:])
	o.n += n
	switch e {
	case 0:
		return true
	case syscall.EAGAIN:
		return false
	}
	o.err = e
	return true
}

// WriteSome writes as much of p to fd as its socket takes, without
// waiting: what it wrote, and 0 once all of p is written, syscall.EAGAIN
// when the socket's buffer is full, or the error (syscall.EIO for a write
// that wrote nothing). For a caller already in a RawConn's function.
func WriteSome(fd uintptr, p []byte) (int, syscall.Errno) {
	written := 0
	for written < len(p) {
		n, e := sysWrite(fd, p[written:])
		switch e {
		case 0:
			if n == 0 {
				return written, syscall.EIO
			}
			written += n
		case syscall.EINTR:
		default:
			return written, e
		}
	}
	return written, 0
}
