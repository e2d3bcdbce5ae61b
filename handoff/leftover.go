package handoff

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"

	"smoothserve/internal/pidfd"
	"smoothserve/internal/procstat"
)

// group names the process group an adopted process led: its id (the
// leader's pid), the leader's start time and its session. An own group is
// one this process's child led, reaped since: its id cannot name another
// group while one of its members runs, so neither is checked.
type group struct {
	pgid    int
	start   uint64 // the leader's start time (/proc/PID/stat field 22)
	session int
	own     bool
}

// leftRounds bounds the scans of signalLeft and waitLeft: a member forking
// meanwhile is found by the next.
const leftRounds = 4

// signalLeft sends sig to the processes left in process group g after its
// leader, an adopted process, has exited: the workers it forked. The
// supervisor's own children are signalled with kill(-pgid) after they are
// reaped; an adopted process is not this one's child, so what the id names
// now is checked instead.
//
// Which processes are g's: those whose group is g.pgid and whose session
// is the leader's, each signalled through a pidfd opened for it and checked
// again after the open (a pidfd names its process for good). Linux hands
// out no pid that still names a process group with a member, so while one
// of the leader's workers is left the id is the leader's group. Once that
// group is empty, the id can go to a process that leads a group of its
// own: one alive is at /proc/PGID with another start time, looked at
// before each scan and before each signal; one that exited since and left
// members of its group is told apart by their session, which is the
// leader's only if that process was started in it (by smoothserve or an
// instance, not by setsid) and had the leader's pid, after the pid space
// wrapped around.
//
// It does as kill(-pgid) does to a member that moved to a group or a
// session of its own: it leaves it. An error says what could not be read
// or signalled; nothing is signalled where it cannot tell whose the group
// is.
func signalLeft(g group, sig syscall.Signal) error {
	done := map[[2]uint64]bool{} // pid and start time of those signalled
	for range leftRounds {
		ms, err := openLeft(g, done)
		if len(ms) > 0 {
			err = errors.Join(err, signalAll(g, ms, sig))
		}
		closeAll(ms)
		if err != nil || len(ms) == 0 {
			return err
		}
	}
	return nil
}

// waitLeft waits until no process signalLeft would reach runs in g, or
// until stop is closed; it returns how many ran then. It waits on their
// pidfds, in the runtime's poller: a stop waiting for a worker costs no
// CPU. A zombie counts as exited.
func waitLeft(g group, stop <-chan struct{}) (int, error) {
	for range leftRounds {
		ms, err := openLeft(g, map[[2]uint64]bool{})
		if err != nil || len(ms) == 0 {
			closeAll(ms)
			return len(ms), err
		}
		left := waitAll(ms, stop)
		closeAll(ms)
		if left > 0 {
			return left, nil
		}
	}
	return 0, nil
}

// waitAll waits until every process of ms has exited, or until stop is
// closed, and returns how many had not then.
func waitAll(ms []leftMember, stop <-chan struct{}) int {
	exited := make(chan struct{}, len(ms))
	for _, m := range ms {
		go func() {
			if m.f.Wait() == nil {
				exited <- struct{}{}
			} // else closed by closeAll, after the caller stopped waiting
		}()
	}
	for n := len(ms); ; n-- {
		if n == 0 {
			return 0
		}
		select {
		case <-exited:
		case <-stop:
			return n
		}
	}
}

// leftMember is a member of a group, held by a pidfd.
type leftMember struct {
	f   *pidfd.File
	key [2]uint64 // pid and start time
}

func closeAll(ms []leftMember) {
	for _, m := range ms {
		m.f.Close()
	}
}

// of reports whether st, a member of g's group, is one of g's: not its
// leader, alive, and of its session (any, for an own group).
func (g group) of(st procstat.Stat) bool {
	return st.Pgrp == g.pgid && st.Pid != g.pgid && !st.Exited() && (g.own || st.Session == g.session)
}

// openLeft opens a pidfd for each of g's members (g.of) not in done,
// checked after the open; it marks them done.
func openLeft(g group, done map[[2]uint64]bool) (ms []leftMember, err error) {
	if ok, err := groupIsLeaders(g); !ok {
		return nil, err
	}
	members, err := procstat.Members(g.pgid)
	if err != nil {
		return nil, fmt.Errorf("process group %d: %w", g.pgid, err)
	}
	for _, m := range members {
		key := [2]uint64{uint64(m.Pid), m.StartTime}
		if !g.of(m) || done[key] {
			continue // the leader, a zombie; not its; or signalled already
		}
		f, err := pidfd.Open(m.Pid)
		if errors.Is(err, pidfd.ErrGone) {
			continue // gone since the scan
		}
		if err != nil {
			return ms, fmt.Errorf("process group %d: %w", g.pgid, err)
		}
		st, err := procstat.Read(m.Pid)
		if err != nil || !g.of(st) || st.StartTime != m.StartTime {
			f.Close() // gone, or left the group, since the scan
			continue
		}
		done[key] = true
		ms = append(ms, leftMember{f, key})
	}
	return ms, nil
}

// signalAll sends sig through each of ms, once g is still the leader's.
func signalAll(g group, ms []leftMember, sig syscall.Signal) error {
	if ok, err := groupIsLeaders(g); !ok {
		return err
	}
	var errs []error
	for _, m := range ms {
		var err error
		m.f.Control(func(fd int) { err = unix.PidfdSendSignal(fd, sig, nil, 0) })
		if err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("pid %d: %w", m.key[0], err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("signal %v to what is left of process group %d: %w", sig, g.pgid, errors.Join(errs...))
	}
	return nil
}

// groupIsLeaders reports whether id g.pgid may still be the group of g's
// leader: no process has pid g.pgid, or the one that has is that leader (a
// zombie not reaped yet). Where /proc cannot tell, the error says so. An
// own group always is.
func groupIsLeaders(g group) (bool, error) {
	if g.own {
		return true, nil
	}
	st, err := procstat.Read(g.pgid)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("process group %d: cannot tell whose it is: %w", g.pgid, err)
	}
	return st.StartTime == g.start, nil
}

// Leftover is what is left of the process group of a recorded instance
// whose process exited while no smoothserve watched it (the daemon was
// down): its workers, which may still hold the instance's port. It is a
// process whose leader has exited: Done is closed, Signal and WaitLeft
// reach the group's members as Process's do.
type Leftover struct {
	in   Instance
	g    group
	done chan struct{}
}

// LeftoverOf returns the Leftover of in if in's process has exited (its
// pid is gone, or a zombie): nil if it runs, if its pid is another
// process's (then nothing is left of its group: Linux does not hand out a
// pid that still names a group with a member), or if the state file, of
// an older version, did not record the session, without which the group's
// members cannot be told from a stranger's.
func LeftoverOf(in Instance) *Leftover {
	if in.Session == nil || in.Pid <= 0 {
		return nil
	}
	if _, err := verify(in); !errors.Is(err, ErrGone) {
		return nil
	}
	done := make(chan struct{})
	close(done)
	return &Leftover{in: in, g: group{pgid: in.Pid, start: in.StartTime, session: *in.Session}, done: done}
}

func (l *Leftover) Pid() int              { return l.in.Pid }
func (l *Leftover) Done() <-chan struct{} { return l.done }

// Err says the leader exited while no smoothserve watched it.
func (l *Leftover) Err() error {
	return fmt.Errorf("pid %d had exited (status unknown: not our child)", l.in.Pid)
}

// Signal sends sig to the members of the group left (signalLeft).
func (l *Leftover) Signal(sig syscall.Signal) error { return signalLeft(l.g, sig) }

// WaitLeft waits until none of them runs, or until stop is closed, and
// returns how many ran then (waitLeft).
func (l *Leftover) WaitLeft(stop <-chan struct{}) (int, error) { return groupWait(l.g, stop) }

// WaitOwnGroup is WaitLeft for the group of pgid, which a child of this
// process led and was reaped: any of its members.
func WaitOwnGroup(pgid int, stop <-chan struct{}) (int, error) {
	return groupWait(group{pgid: pgid, own: true}, stop)
}

// groupWait is waitLeft, at once where no process at all is in a group of
// g's id (one system call: the case of every instance that exec'd its
// server).
func groupWait(g group, stop <-chan struct{}) (int, error) {
	if errors.Is(unix.Kill(-g.pgid, 0), unix.ESRCH) {
		return 0, nil
	}
	return waitLeft(g, stop)
}
