package handoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is an adopted process watched through a pidfd: this process is
// not its parent and cannot wait for it, so its exit status is never known.
//
// Ownership: the watch goroutine owns err until it closes done; mu guards
// the file descriptors against Close while Signal uses them (the goroutine
// uses them too, and Close waits for it to stop before closing them).
type Process struct {
	pid     int
	done    chan struct{} // closed by watch once the process has exited
	stopped chan struct{} // closed when watch returns
	err     error         // written by watch before close(done)

	closeOnce sync.Once
	mu        sync.Mutex
	closed    bool
	pidfd     int // refers to the adopted process, even after its pid is reused
	wake      int // eventfd: Close writes it to stop watch
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
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(pidfd)
		return nil, fmt.Errorf("adopting %s: eventfd: %w", in, err)
	}
	p := &Process{
		pid:     in.Pid,
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		pidfd:   pidfd,
		wake:    wake,
	}
	go p.watch()
	return p, nil
}

// watch waits until the pidfd is readable (the process exited; a zombie
// counts, whoever reaps it and whenever) or Close wakes it.
func (p *Process) watch() {
	defer close(p.stopped)
	fds := []unix.PollFd{
		{Fd: int32(p.pidfd), Events: unix.POLLIN},
		{Fd: int32(p.wake), Events: unix.POLLIN},
	}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		_, err := unix.Poll(fds, -1)
		if err != nil {
			// EINTR, or ENOMEM under memory pressure: try again; the
			// eventfd still ends the loop on Close.
			if !errors.Is(err, unix.EINTR) {
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents != 0 {
			p.err = fmt.Errorf("pid %d exited (status unknown: not our child)", p.pid)
			close(p.done)
			return
		}
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
	if p.closed {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, os.ErrClosed)
	}
	// While the pidfd is not readable the process has not exited, so its pid
	// (and the group id equal to it) is still its own. The window between
	// this check and kill is the one every kill(2) has; the pidfd closes it
	// for the leader alone.
	if p.alive() {
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
	err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	if err == nil || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return fmt.Errorf("signal %v to pid %d: pidfd_send_signal: %w", sig, p.pid, err)
}

// alive polls the pidfd without waiting. The caller holds mu.
func (p *Process) alive() bool {
	fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 0
	}
}

// Close stops watching: it ends the watch goroutine and closes the pidfd.
// It does not signal the process, and does not close Done (the process did
// not exit). Close is idempotent; Signal after Close is an error.
func (p *Process) Close() error {
	var err error
	p.closeOnce.Do(func() {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		// One write to a fresh eventfd cannot fail (only overflowing its
		// 64-bit counter could), and it makes the watch poll return.
		unix.Write(p.wake, one[:])
		<-p.stopped
		p.mu.Lock()
		defer p.mu.Unlock()
		p.closed = true
		err = errors.Join(unix.Close(p.pidfd), unix.Close(p.wake))
		if err != nil {
			err = fmt.Errorf("closing pid %d: %w", p.pid, err)
		}
	})
	return err
}
