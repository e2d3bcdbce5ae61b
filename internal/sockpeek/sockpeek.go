// Package sockpeek looks at a connected socket without reading from it or
// blocking: whether the other side has sent something, closed, or neither.
// It is how the proxy watches connections it is not reading (a pooled
// connection to an instance, a client while the instance thinks).
package sockpeek

import (
	"syscall"

	"smoothserve/internal/rawio"
)

// State is what a peek found.
type State uint8

const (
	Quiet  State = iota // open, nothing to read
	Data                // bytes are waiting
	Closed              // the other side closed or reset the connection
)

func (s State) String() string {
	switch s {
	case Quiet:
		return "quiet"
	case Data:
		return "data"
	}
	return "closed"
}

// FD peeks at the socket fd: one non-blocking recv(MSG_PEEK) of a byte.
// Call it from a syscall.RawConn's Read or Control callback.
func FD(fd uintptr) State {
	var b [1]byte
	n, errno := rawio.Peek(fd, b[:])
	switch {
	case errno == syscall.EAGAIN:
		return Quiet
	case errno == 0 && n > 0:
		return Data
	}
	return Closed
}
