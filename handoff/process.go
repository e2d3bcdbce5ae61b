package handoff

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is an adopted process watched through a pidfd: this process is
// not its parent and cannot wait for it, so its exit status is never known.
//
// The pidfd is in the runtime's poller (it is readable once the process
// has exited), so a watched process costs a parked goroutine, not a thread
// blocked in poll(2).
//
// Ownership: the watch goroutine owns err until it closes done; file owns
// the pidfd, and Signal uses it through file's Control, which Close waits
// for; mu orders Signal against Close.
type Process struct {
	pid     int
	done    chan struct{} // closed by watch once the process has exited
	stopped chan struct{} // closed when watch returns
	err     error         // written by watch before close(done)

	closeOnce sync.Once
	closing   atomic.Bool // set by Close, under mu, before it closes file
	mu        sync.Mutex
	file      *os.File        // the pidfd, non-blocking: refers to the adopted process, even after its pid is reused
	raw       syscall.RawConn // file's
}

// Adopt starts watching the process recorded in in. It opens a pidfd for
// in.Pid first and verifies in second: a pid reused by another process
// before the open fails Verify, and one reused after it cannot fool the
// pidfd. A process that is gone wraps ErrGone.
func Adopt(in Instance) (*Process, error) {
	pidfd, err := unix.PidfdOpen(in.Pid, 0) // pidfds are always close-on-exec
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("adopting %s: %w", in, ErrGone)
		}
		return nil, fmt.Errorf("adopting %s: pidfd_open: %w", in, err)
	}
	if err := Verify(in); err != nil {
		unix.Close(pidfd)
		return nil, fmt.Errorf("adopting: %w", err)
	}
	// Non-blocking, so that os.NewFile puts it in the runtime's poller.
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return nil, fmt.Errorf("adopting %s: pidfd: %w", in, err)
	}
	file := os.NewFile(uintptr(pidfd), "pidfd of pid "+strconv.Itoa(in.Pid))
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("adopting %s: pidfd: %w", in, err)
	}
	p := &Process{
		pid:     in.Pid,
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		file:    file,
		raw:     raw,
	}
	go p.watch()
	return p, nil
}

// watch waits in the runtime's poller until the pidfd is readable (the
// process exited; a zombie counts, whoever reaps it and whenever) or
// Close closes it.
func (p *Process) watch() {
	defer close(p.stopped)
	// Read checks once, then waits for readability and checks again: an
	// exit before the wait is seen by the check, one after it wakes it.
	// A check that fails (ENOMEM) is tried again without the wait: the
	// poller reports an exit once, and may have done so already.
	err := p.raw.Read(func(fd uintptr) bool {
		for {
			gone, err := exited(int(fd))
			if err == nil {
				return gone
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err != nil && p.closing.Load() {
		return
	}
	if err != nil {
		// The poller refused the pidfd (a kernel with pidfd_open can poll
		// one, so this is not expected): look every 50 ms instead.
		for {
			gone := false
			if p.raw.Control(func(fd uintptr) { gone, _ = exited(int(fd)) }) != nil {
				return // closed
			}
			if gone {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	p.err = fmt.Errorf("pid %d exited (status unknown: not our child)", p.pid)
	close(p.done)
}

// exited polls a pidfd without waiting: true once its process has exited.
// An error (ENOMEM; EINTR is retried) says nothing either way.
func exited(pidfd int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0, err
	}
}

// Pid returns the adopted process's pid.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the process has exited. Close does not close it.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns nil before Done is closed, and after it an error saying the
// process exited with a status that cannot be known.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Signal sends sig to the process's group (kill(-pid)) while the process,
// its group leader, is alive according to the pidfd; once it has exited,
// or if it leads no group, sig goes to it alone through the pidfd, which
// can never reach a process that reused its pid. A process that has
// already exited is not an error (like os.ErrProcessDone).
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing.Load() {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, os.ErrClosed)
	}
	var err error
	if cerr := p.raw.Control(func(fd uintptr) { err = p.signal(int(fd), sig) }); cerr != nil {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, cerr)
	}
	return err
}

// signal is Signal through the open pidfd.
func (p *Process) signal(pidfd int, sig syscall.Signal) error {
	// While the pidfd is not readable the process has not exited, so its pid
	// (and the group id equal to it) is still its own. The window between
	// this check and kill is the one every kill(2) has; the pidfd closes it
	// for the leader alone. A poll that fails says nothing: then only the
	// pidfd is used, which cannot reach another process.
	if gone, err := exited(pidfd); err == nil && !gone {
		if pgid, err := unix.Getpgid(p.pid); err == nil && pgid == p.pid {
			err := unix.Kill(-p.pid, sig)
			if err == nil {
				return nil
			}
			if !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("signal %v to process group %d: %w", sig, p.pid, err)
			}
		}
	}
	err := unix.PidfdSendSignal(pidfd, sig, nil, 0)
	if err == nil || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return fmt.Errorf("signal %v to pid %d: pidfd_send_signal: %w", sig, p.pid, err)
}

// Close stops watching: it ends the watch goroutine and closes the pidfd.
// It does not signal the process, and does not close Done (the process did
// not exit). Close is idempotent; Signal after Close is an error.
func (p *Process) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.closing.Store(true)
		// Closing the file ends the watch's wait in the poller, and waits
		// for a Control under way.
		err = p.file.Close()
		<-p.stopped
		if err != nil {
			err = fmt.Errorf("closing pid %d: %w", p.pid, err)
		}
	})
	return err
}
