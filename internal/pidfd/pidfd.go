package pidfd

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// File is an open pidfd, non-blocking and in the runtime's poller.
//
// Ownership: one Wait at a time; Control may run beside it; Close ends
// both (Wait's error, then).
type File struct {
	pid  int
	file *os.File
	raw  syscall.RawConn
}

// ErrGone is Open's error when no process has the pid.
var ErrGone = errors.New("no such process")

// Open opens a pidfd for pid. It is close-on-exec (pidfds always are), and
// non-blocking, so that the runtime's poller watches it; the descriptor is
// new, whatever other pidfds for pid exist (os/exec's own, for a child).
func Open(pid int) (*File, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("pidfd_open of pid %d: %w", pid, ErrGone)
		}
		return nil, fmt.Errorf("pidfd_open of pid %d: %w", pid, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pidfd of pid %d: %w", pid, err)
	}
	file := os.NewFile(uintptr(fd), "pidfd of pid "+strconv.Itoa(pid))
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("pidfd of pid %d: %w", pid, err)
	}
	return &File{pid: pid, file: file, raw: raw}, nil
}

// Pid is the pid f was opened for.
func (f *File) Pid() int { return f.pid }

// Wait returns nil once the process has exited (a zombie counts, whoever
// reaps it and whenever), or an error once Close has closed f. It
// waits in the poller: it checks once, then waits for the pidfd to be
// readable and checks again, so an exit before the wait is seen by the
// check and one after it wakes the wait. A check that fails (ENOMEM) is
// tried again without waiting: the poller reports an exit once, and may
// have done so already. Should the poller refuse the pidfd, it looks
// every 50 ms instead.
func (f *File) Wait() error {
	err := f.raw.Read(func(fd uintptr) bool {
		for {
			gone, err := Exited(int(fd))
			if err == nil {
				return gone
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err == nil {
		return nil
	}
	// Closed (Control says so below), or the poller refused the pidfd (a
	// kernel that has pidfd_open can poll one, so this is not expected).
	for {
		gone := false
		if err := f.raw.Control(func(fd uintptr) { gone, _ = Exited(int(fd)) }); err != nil {
			return err // closed
		}
		if gone {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Control runs fn with the pidfd, which stays open until fn returns (a
// Close waits for it). After Close it runs nothing and returns an error.
func (f *File) Control(fn func(fd int)) error {
	return f.raw.Control(func(fd uintptr) { fn(int(fd)) })
}

// Close closes the pidfd, ending a Wait under way with an error.
func (f *File) Close() error { return f.file.Close() }

// Exited polls the pidfd fd without waiting: true once its process has
// exited. An error (ENOMEM; EINTR is retried) says nothing either way.
func Exited(fd int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0, err
	}
}
