package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"smoothserve/handoff"
	"smoothserve/internal/nofile"
	"smoothserve/internal/pidfd"
	"smoothserve/internal/priority"
)

// process is the OS process behind an instance. Signals go to its whole
// process group: an instance's own children must not outlive it.
//
// Two kinds implement it: childProcess, a process this smoothserve started
// and reaps with Wait, and *handoff.Process, one adopted from an earlier
// smoothserve (handoff.go), which is not our child and so is watched
// through a pidfd instead.
type process interface {
	Pid() int
	// Done is closed once the process has exited (and, for a child, been
	// reaped).
	Done() <-chan struct{}
	// Err says how the process exited; nil for exit status 0. Only
	// meaningful once Done is closed.
	Err() error
	// Signal signals the process group. A group that is gone is not an
	// error, as os.ErrProcessDone is not.
	Signal(sig syscall.Signal) error
	// WaitLeft waits, once it has exited, until no process is left in its
	// group (a shell wrapper's server, the workers it forked), or until
	// stop is closed; it returns how many were left then. It waits in the
	// poller (pidfds), not by polling.
	WaitLeft(stop <-chan struct{}) (int, error)
}

// childProcess is a process started by this smoothserve, reaped by a
// goroutine that ends when the process does.
type childProcess struct {
	pid      int
	done     chan struct{}
	pidfdErr error // why its exit is waited for on a blocked thread, not in the poller; nil when it is not
	err      error // written by the reaping goroutine before it closes done
}

// devNull is /dev/null, opened once for reading: the standard input of
// every instance (os/exec would open and close it for each start). It is
// never closed.
var devNull = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })

// openPidfd is pidfd.Open; a test makes it fail, as a kernel before 5.3
// does.
var openPidfd = pidfd.Open

// startChild starts cmd and a goroutine to reap it. cmd must have its own
// process group (Setpgid), and files, not pipes, for its output, so that Wait
// returns as soon as the process exits.
//
// The goroutine waits for the exit in the runtime's poller (a pidfd), and
// only then reaps with cmd.Wait, which returns at once: cmd.Wait alone would
// hold a thread blocked in waitid(2) for the instance's whole life (package
// pidfd says what else that costs). The pidfd is opened before anything can
// reap the child, so it is the child's. Without one (a kernel before 5.3)
// cmd.Wait waits alone, and pidfdErr says why.
//
// Out of descriptors, the pidfd's open asks room (nil: none) and is made
// again.
func startChild(cmd *exec.Cmd, room nofile.Room) (*childProcess, error) {
	if cmd.Stdin == nil {
		if f, err := devNull(); err == nil {
			cmd.Stdin = f
		}
	}
	// At smoothserve's own priority, even while it starts below it.
	if err := priority.Start(cmd.Start); err != nil {
		return nil, err
	}
	p := &childProcess{pid: cmd.Process.Pid, done: make(chan struct{})}
	var fd *pidfd.File
	p.pidfdErr = room.Retry("watching pid "+strconv.Itoa(p.pid), func() (err error) { fd, err = openPidfd(p.pid); return err })
	go func() {
		if fd != nil {
			fd.Wait() // an error only after Close, which nothing else calls
			fd.Close()
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *childProcess) Pid() int              { return p.pid }
func (p *childProcess) Done() <-chan struct{} { return p.done }
func (p *childProcess) Err() error            { return p.err }

func (p *childProcess) Signal(sig syscall.Signal) error {
	return signalGroup(p.pid, sig)
}

// WaitLeft waits for what is left of its group, once it is reaped: its
// pid cannot be handed out again while the group has a member, so group
// pid is its own while there is one.
func (p *childProcess) WaitLeft(stop <-chan struct{}) (int, error) {
	return handoff.WaitOwnGroup(p.pid, stop)
}

// signalGroup signals the process group led by pid. After the leader is
// reaped its pid cannot be handed out again while the group still has a
// member, so this reaches stragglers and nothing else.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("sending %v to process group %d: %w", sig, pid, err)
}

// exitReason describes how a process ended, for logs.
func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// reapTimeout bounds the wait for a process to disappear after SIGKILL; only
// a process stuck in the kernel takes longer.
const reapTimeout = 5 * time.Second

// terminate stops p gracefully: SIGTERM to its group, then SIGKILL once
// grace has passed with it or a process of its group still running (or at
// once when killed is closed), then SIGKILL to the group anyway so that
// no straggler keeps the port. Its group counts, not only p: a shell
// wrapper that did not exec dies of SIGTERM at once while its server
// finishes its requests. It returns once p is reaped and its group gone,
// or an error if they could not be stopped; overran says how many of the
// group's processes ran still when grace ended (SIGKILL was needed).
// ctx's end (a Kill) cuts the grace short.
func terminate(ctx context.Context, p process, grace time.Duration) (overran int, err error) {
	termErr := p.Signal(syscall.SIGTERM)
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	select {
	case <-p.Done():
		overran, _ = p.WaitLeft(gctx.Done())
	case <-gctx.Done():
		if ctx.Err() == nil {
			overran = 1 // the process itself (and its group, uncounted)
		}
	}
	return overran, errors.Join(termErr, kill(p))
}

// overranWhat says what terminate's overran counted, for the log.
func overranWhat(p process, overran int) string {
	select {
	case <-p.Done():
		return processes(overran) + " left in its group"
	default:
		return "it and its group"
	}
}

// processes is "1 process" or "N processes".
func processes(n int) string {
	if n == 1 {
		return "1 process"
	}
	return fmt.Sprintf("%d processes", n)
}

// kill SIGKILLs p's group and waits for p to be reaped and its group to
// be gone: a port a process of it held is free once kill returns.
func kill(p process) error {
	err := p.Signal(syscall.SIGKILL)
	ctx, cancel := context.WithTimeout(context.Background(), reapTimeout)
	defer cancel()
	select {
	case <-p.Done():
	case <-ctx.Done():
		return errors.Join(err, fmt.Errorf("pid %d still running %v after SIGKILL", p.Pid(), reapTimeout))
	}
	switch n, lerr := p.WaitLeft(ctx.Done()); {
	case lerr != nil:
		err = errors.Join(err, fmt.Errorf("what is left of the group of pid %d after SIGKILL: %w", p.Pid(), lerr))
	case n > 0:
		err = errors.Join(err, fmt.Errorf("%d processes of the group of pid %d still running %v after SIGKILL", n, p.Pid(), reapTimeout))
	}
	return err
}

// procTable is every process the supervisor has started and not yet let go
// of, so that Kill reaches all of them from any goroutine.
//
// Ownership: mu guards m and killed.
type procTable struct {
	mu     sync.Mutex
	m      map[process]struct{}
	killed bool
}

// add records p; once Kill has run it refuses, and the caller must kill p.
func (t *procTable) add(p process) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.killed {
		return false
	}
	if t.m == nil {
		t.m = make(map[process]struct{})
	}
	t.m[p] = struct{}{}
	return true
}

func (t *procTable) remove(p process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, p)
}

// killAll SIGKILLs every recorded process group and refuses new ones.
func (t *procTable) killAll() {
	t.mu.Lock()
	t.killed = true
	ps := make([]process, 0, len(t.m))
	for p := range t.m {
		ps = append(ps, p)
	}
	t.mu.Unlock()
	for _, p := range ps {
		p.Signal(syscall.SIGKILL) // best effort: Kill has no one to report to
	}
}

// execError turns an error from exec.Cmd.Start into "exec PATH: reason".
func execError(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("exec %s: %w", path, err)
}
