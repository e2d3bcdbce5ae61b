package handoff

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"

	"smoothserve/internal/procstat"
)

// group names the process group an adopted process led: its id (the
// leader's pid), the leader's start time and its session.
type group struct {
	pgid    int
	start   uint64 // the leader's start time (/proc/PID/stat field 22)
	session int
}

// leftRounds bounds signalLeft's scans: a member forking while one scan
// is signalled is found by the next.
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
		fds, err := openLeft(g, done)
		if len(fds) > 0 {
			err = errors.Join(err, signalAll(g, fds, sig))
		}
		for _, m := range fds {
			unix.Close(m.fd)
		}
		if err != nil || len(fds) == 0 {
			return err
		}
	}
	return nil
}

// leftMember is a member of a group, held by a pidfd.
type leftMember struct {
	fd  int
	key [2]uint64 // pid and start time
}

// openLeft opens a pidfd for each member of g not in done, checked after
// the open; it marks them done.
func openLeft(g group, done map[[2]uint64]bool) (fds []leftMember, err error) {
	if ok, err := groupIsLeaders(g); !ok {
		return nil, err
	}
	members, err := procstat.Members(g.pgid)
	if err != nil {
		return nil, fmt.Errorf("process group %d: %w", g.pgid, err)
	}
	for _, m := range members {
		key := [2]uint64{uint64(m.Pid), m.StartTime}
		if m.Pid == g.pgid || m.Session != g.session || done[key] {
			continue // the leader, a zombie; not its; or signalled already
		}
		fd, err := unix.PidfdOpen(m.Pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // gone since the scan
		}
		if err != nil {
			return fds, fmt.Errorf("process group %d: pidfd_open of pid %d: %w", g.pgid, m.Pid, err)
		}
		st, err := procstat.Read(m.Pid)
		if err != nil || st.Pgrp != g.pgid || st.Session != g.session || st.StartTime != m.StartTime {
			unix.Close(fd) // gone, or left the group, since the scan
			continue
		}
		done[key] = true
		fds = append(fds, leftMember{fd, key})
	}
	return fds, nil
}

// signalAll sends sig through each of fds, once g is still the leader's.
func signalAll(g group, fds []leftMember, sig syscall.Signal) error {
	if ok, err := groupIsLeaders(g); !ok {
		return err
	}
	var errs []error
	for _, m := range fds {
		if err := unix.PidfdSendSignal(m.fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
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
// zombie not reaped yet). Where /proc cannot tell, the error says so.
func groupIsLeaders(g group) (bool, error) {
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
// process whose leader has exited: Done is closed, Signal and Left reach
// the group's members as Process's do.
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
	if in.Session == 0 || in.Pid <= 0 || !errors.Is(Verify(in), ErrGone) {
		return nil
	}
	done := make(chan struct{})
	close(done)
	return &Leftover{in: in, g: group{pgid: in.Pid, start: in.StartTime, session: in.Session}, done: done}
}

func (l *Leftover) Pid() int              { return l.in.Pid }
func (l *Leftover) Done() <-chan struct{} { return l.done }

// Err says the leader exited while no smoothserve watched it.
func (l *Leftover) Err() error {
	return fmt.Errorf("pid %d had exited (status unknown: not our child)", l.in.Pid)
}

// Signal sends sig to the members of the group left (signalLeft).
func (l *Leftover) Signal(sig syscall.Signal) error { return signalLeft(l.g, sig) }

// Left counts them.
func (l *Leftover) Left() (int, error) { return countLeft(l.g) }

// countLeft counts the members of g that signalLeft reaches.
func countLeft(g group) (int, error) {
	if errors.Is(unix.Kill(-g.pgid, 0), unix.ESRCH) {
		return 0, nil // no process at all in a group of that id
	}
	if ok, err := groupIsLeaders(g); !ok {
		return 0, err
	}
	return procstat.Left(g.pgid, g.session)
}
