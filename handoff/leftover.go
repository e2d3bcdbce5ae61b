package handoff

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"

	"smoothserve/internal/procstat"
)

// signalLeftInGroup sends sig to the processes left in process group pgid
// after its leader, the adopted process that started at leaderStart, has
// exited: the workers it forked. The supervisor's own children are
// signalled with kill(-pgid) after they are reaped; an adopted process is
// not this one's child, so the id's owner is checked instead.
//
// Why this reaches only the leader's group: Linux hands out no pid that
// still names a process group with a member in it, so while a worker is
// left, pgid is the group the leader made. The id can name another group
// only once this one is empty and a new process got pid pgid and leads a
// group of its own; that process, alive, is at /proc/pgid with another
// start time, which is looked at before the members are listed and again
// after a pidfd has been opened for each of them (a pidfd names its
// process for good, and each member's group and start time are checked
// after its open). Not told apart: a process that got pid pgid, led a
// group, forked into it and exited, all between the two looks, which needs
// the pid space to wrap around in that time.
func signalLeftInGroup(pgid int, leaderStart uint64, sig syscall.Signal) error {
	if !groupIsLeaders(pgid, leaderStart) {
		return nil
	}
	members, err := procstat.Members(pgid)
	if err != nil {
		return fmt.Errorf("signal %v to what is left of process group %d: %w", sig, pgid, err)
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, m := range members {
		if m.Pid == pgid || m.StartTime < leaderStart {
			continue // the leader, a zombie; or none of its (it started before it)
		}
		fd, err := unix.PidfdOpen(m.Pid, 0)
		if err != nil {
			continue // gone since the scan
		}
		if st, err := procstat.Read(m.Pid); err != nil || st.Pgrp != pgid || st.StartTime != m.StartTime {
			unix.Close(fd) // gone, or left the group, since the scan
			continue
		}
		fds = append(fds, fd)
	}
	if len(fds) == 0 || !groupIsLeaders(pgid, leaderStart) {
		return nil
	}
	var errs []error
	for _, fd := range fds {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("signal %v to what is left of process group %d: %w", sig, pgid, errors.Join(errs...))
	}
	return nil
}

// groupIsLeaders reports whether id pgid may still be the group of the
// process that started at leaderStart: no process has pid pgid, or the one
// that has is that leader (a zombie not reaped yet). When /proc cannot
// tell, it says no: nothing is signalled.
func groupIsLeaders(pgid int, leaderStart uint64) bool {
	st, err := procstat.Read(pgid)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && st.StartTime == leaderStart
}
