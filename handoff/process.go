package handoff

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"smoothserve/internal/nofile"
	"smoothserve/internal/pidfd"
)

// Process is an adopted process watched through a pidfd: this process is
// not its parent and cannot wait for it, so its exit status is never known.
//
// The pidfd is in the runtime's poller (package pidfd), so a watched
// process costs a parked goroutine, not a thread blocked in poll(2).
//
// Ownership: the watch goroutine owns err until it closes done; fd owns
// the pidfd, and Signal uses it through fd's Control, which Close waits
// for; mu orders Signal against Close.
type Process struct {
	pid     int
	leads   bool          // it led its own process group when adopted
	group   group         // that group, to signal what is left of it after the process exited
	room    nofile.Room   // asked when signalling that group finds no descriptor
	done    chan struct{} // closed by watch once the process has exited
	stopped chan struct{} // closed when watch returns
	err     error         // written by watch before close(done)

	closeOnce sync.Once
	closing   atomic.Bool // set by Close, under mu, before it closes fd
	mu        sync.Mutex
	fd        *pidfd.File // refers to the adopted process, even after its pid is reused
}

// Adopt starts watching the process recorded in in. It opens a pidfd for
// in.Pid first and verifies in second: a pid reused by another process
// before the open fails Verify, and one reused after it cannot fool the
// pidfd. A process that is gone wraps ErrGone. room (nil: none) is asked
// when Signal finds no descriptor to reach the processes left in its
// group.
func Adopt(in Instance, room nofile.Room) (*Process, error) {
	fd, err := pidfd.Open(in.Pid)
	if err != nil {
		if errors.Is(err, pidfd.ErrGone) {
			return nil, fmt.Errorf("adopting %s: %w", in, ErrGone)
		}
		return nil, fmt.Errorf("adopting %s: %w", in, err)
	}
	st, err := verify(in)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("adopting: %w", err)
	}
	p := &Process{
		pid:     in.Pid,
		leads:   st.Pgrp == in.Pid,
		group:   group{pgid: in.Pid, start: in.StartTime, session: st.Session},
		room:    room,
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		fd:      fd,
	}
	go p.watch()
	return p, nil
}

// watch waits until the process has exited or Close closes the pidfd.
func (p *Process) watch() {
	defer close(p.stopped)
	if p.fd.Wait() != nil {
		return // closed
	}
	p.err = fmt.Errorf("pid %d exited (status unknown: not our child)", p.pid)
	close(p.done)
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
// its group leader, is alive according to the pidfd. Once it has exited,
// sig goes to what is left of its group, each process through a pidfd of
// its own (signalLeft: a worker hung after its leader exited must
// not outlive it). A process that leads no group gets sig alone, through
// the pidfd, which can never reach a process that reused its pid. A
// process that has already exited is not an error (like
// os.ErrProcessDone).
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing.Load() {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, os.ErrClosed)
	}
	var err error
	if cerr := p.fd.Control(func(fd int) { err = p.signal(fd, sig) }); cerr != nil {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, cerr)
	}
	return err
}

// signal is Signal through the open pidfd.
func (p *Process) signal(fd int, sig syscall.Signal) error {
	// While the pidfd is not readable the process has not exited, so its pid
	// (and the group id equal to it) is still its own. The window between
	// this check and kill is the one every kill(2) has; the pidfd closes it
	// for the leader alone. A poll that fails says nothing: then only the
	// pidfd is used, which cannot reach another process.
	gone, perr := pidfd.Exited(fd)
	if perr == nil && p.leads {
		if gone {
			return p.room.Retry("signalling what is left of process group "+strconv.Itoa(p.pid), func() error {
				return signalLeft(p.group, sig)
			})
		}
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
	err := unix.PidfdSendSignal(fd, sig, nil, 0)
	if err == nil || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return fmt.Errorf("signal %v to pid %d: pidfd_send_signal: %w", sig, p.pid, err)
}

// WaitLeft waits, once the process has exited, until none of the
// processes left in the group it led runs (those Signal reaches), or
// until stop is closed, and returns how many ran then; 0 at once if it led
// no group.
func (p *Process) WaitLeft(stop <-chan struct{}) (int, error) {
	if !p.leads {
		return 0, nil
	}
	return groupWait(p.group, stop)
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
		// Closing the pidfd ends the watch's wait in the poller, and waits
		// for a Control under way.
		err = p.fd.Close()
		<-p.stopped
		if err != nil {
			err = fmt.Errorf("closing pid %d: %w", p.pid, err)
		}
	})
	return err
}
