// Package sockpeek looks at a connected socket without reading from it or
// blocking: whether the other side has sent something, closed, or neither
// (and whether it closed behind what it sent); and how much of what was sent it has not taken yet. It is how the proxy
// watches connections it is not reading (a pooled connection to an
// instance, a client while the instance thinks, a client reading its last
// answer at a shutdown), and how connpass paces its sender.
package sockpeek

import (
	"syscall"

	"golang.org/x/sys/unix"

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

// HungUpFD reports whether the peer of socket fd has closed its sending
// side, or the connection is reset, even with bytes of its still waiting
// (which FD reports as Data): one non-blocking poll for POLLRDHUP. Call it
// from a syscall.RawConn's Read or Control callback.
func HungUpFD(fd uintptr) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(p, 0)
	return err == nil && n > 0 && p[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}

// UnsentFD is how many bytes sent on the socket fd its peer has not taken
// (SIOCOUTQ: over TCP, not yet acknowledged; over a Unix socket, not yet
// read). Call it from a syscall.RawConn's Write or Control callback.
func UnsentFD(fd uintptr) (int, error) { return unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }

// Unsent is UnsentFD on raw's socket, or -1 if it cannot be known.
func Unsent(raw syscall.RawConn) int {
	n := -1
	raw.Control(func(fd uintptr) {
		if v, err := UnsentFD(fd); err == nil {
			n = v
		}
	})
	return n
}
