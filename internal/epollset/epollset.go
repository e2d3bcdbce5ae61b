package epollset

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Set is an epoll instance. Add and Del may be called from any goroutine;
// Wait from one at a time.
type Set struct {
	f   *os.File // the epoll instance, registered with Go's poller (nested epoll)
	raw syscall.RawConn
}

// New makes an empty set.
func New() (*Set, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epollset: epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the poller: an
	// epoll descriptor is readable while events are ready in it.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("epollset: making the epoll descriptor non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "epollset")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("epollset: %w", err)
	}
	// A deadline works only on a descriptor the poller took: one it did
	// not would make Wait block its thread after all.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("epollset: the poller did not take the epoll descriptor: %w", err)
	}
	return &Set{f: f, raw: raw}, nil
}

// Add adds the descriptor fd with the event ev (epoll_ctl EPOLL_CTL_ADD).
func (s *Set) Add(fd int, ev *syscall.EpollEvent) error {
	return s.ctl(syscall.EPOLL_CTL_ADD, fd, ev)
}

// Del removes the descriptor fd (EPOLL_CTL_DEL).
func (s *Set) Del(fd int) error {
	return s.ctl(syscall.EPOLL_CTL_DEL, fd, nil)
}

// ctl is epoll_ctl on the set's descriptor while it is open: after Close
// it fails, rather than act on a number reused since.
func (s *Set) ctl(op, fd int, ev *syscall.EpollEvent) error {
	var err error
	if cerr := s.raw.Control(func(epfd uintptr) { err = syscall.EpollCtl(int(epfd), op, fd, ev) }); cerr != nil {
		return fmt.Errorf("epollset: %w", cerr)
	}
	return err
}

// Wait fills events with the events ready and returns how many, waiting up
// to timeout for one; 0 when the timeout passed with none.
func (s *Set) Wait(events []syscall.EpollEvent, timeout time.Duration) (int, error) {
	if err := s.f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return 0, fmt.Errorf("epollset: %w", err)
	}
	var n int
	var werr error
	// Read takes the poller's readiness first, then calls the function
	// until it reports done, parking between calls until the descriptor
	// is readable again: an event that comes after a call found none
	// wakes the park, so none is missed.
	err := s.raw.Read(func(fd uintptr) bool {
		n, werr = syscall.EpollWait(int(fd), events, 0)
		if werr == syscall.EINTR {
			n, werr = 0, nil
		}
		return n > 0 || werr != nil
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("epollset: waiting: %w", err)
	case werr != nil:
		return 0, fmt.Errorf("epollset: epoll_wait: %w", werr)
	}
	return n, nil
}

// Close closes the set; a Wait under way returns an error.
func (s *Set) Close() error { return s.f.Close() }
