package sendwait

import (
	"errors"
	"os"
	"syscall"

	"smoothserve/internal/rawio"
	"smoothserve/internal/sockpeek"
)

// ErrNotQuiet is SendQuiet's failure when the socket was not quiet before
// the write: the peer had closed it, or had sent bytes unasked. Nothing
// was written.
var ErrNotQuiet = errors.New("the socket was closed or had bytes waiting before the write; nothing was written")

// A Sender sends over one socket. It is not safe for concurrent use: one
// writer at a time, as with the connection it is for.
type Sender struct {
	raw   syscall.RawConn
	fn    func(fd uintptr) bool // s.step, made once: RawConn.Read takes a func
	p     []byte
	n     int
	err   error
	wrote bool
	quiet bool // SendQuiet: peek first
}

// Init makes s send over raw.
func (s *Sender) Init(raw syscall.RawConn) {
	s.raw = raw
	s.fn = s.step
}

// Send writes p and waits until the socket has something to read (or is
// closed, in error, or past its read deadline). It returns how much of p
// was written, and the write's failure. Less than len(p) with a nil error
// is the socket taking only part of p without waiting, or a read deadline
// already past or a closed socket before anything was written: the rest
// is the caller's to write its usual way, which meets either. A wait that
// ends in an error is not reported: the read that follows meets it.
func (s *Sender) Send(p []byte) (int, error) { return s.send(p, false) }

// SendQuiet is Send, but first looks (a non-blocking peek, in the same
// wait) whether the socket is still quiet, and writes nothing if it is not
// (ErrNotQuiet). A close or bytes that came before the wait began would
// raise no readiness in it: for a socket that may have had them (a pooled
// connection idle long enough for its peer to close it), this is the check
// that nothing was lost.
func (s *Sender) SendQuiet(p []byte) (int, error) { return s.send(p, true) }

func (s *Sender) send(p []byte, quiet bool) (int, error) {
	s.p, s.n, s.err, s.wrote, s.quiet = p, 0, nil, false, quiet
	s.raw.Read(s.fn)
	n, err := s.n, s.err
	s.p, s.err = nil, nil
	return n, err
}

// step is RawConn.Read's function: the first call writes, the next ones
// end the wait (the poller calls again only once the socket is readable).
func (s *Sender) step(fd uintptr) bool {
	if s.wrote {
		return true
	}
	s.wrote = true
	if s.quiet && sockpeek.FD(fd) != sockpeek.Quiet {
		s.err = ErrNotQuiet
		return true
	}
	n, e := rawio.WriteSome(fd, s.p)
	s.n = n
	switch e {
	case 0:
	case syscall.EAGAIN:
		return true // full: the caller writes the rest, waiting as it does
	default:
		s.err = os.NewSyscallError("write", e)
		return true
	}
	return false
}
