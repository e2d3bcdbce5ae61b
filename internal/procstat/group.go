package procstat

import (
	"os"
	"strconv"
	"time"
)

// Usage is the CPU time and memory of the processes of one process group,
// at one moment.
type Usage struct {
	Procs int           // processes found in the group; 0: none (the group is gone)
	CPU   time.Duration // their CPU time, user and system, since each started
	RSS   int64         // their resident memory in bytes, summed (pages they share count once each)

	cpu map[process]time.Duration // each process's part of CPU
}

// process names one process during a boot.
type process struct {
	pid   int
	start uint64
}

// CPUSince is the CPU time the group's processes took since earlier, a
// Usage of the same group read before: for each process in both, its CPU
// time now less then; a process started since counts with all of its own.
// A process that exited in between counts with nothing, as its time is
// no longer in /proc.
func (u Usage) CPUSince(earlier Usage) time.Duration {
	var d time.Duration
	for p, now := range u.cpu {
		d += max(now-earlier.cpu[p], 0)
	}
	return d
}

func (u *Usage) add(st Stat, rss int64) {
	if u.cpu == nil {
		u.cpu = map[process]time.Duration{}
	}
	u.Procs++
	u.CPU += st.CPU()
	u.RSS += rss
	u.cpu[process{st.Pid, st.StartTime}] = st.CPU()
}

// Group sums the processes whose process group is pgid, found by scanning
// /proc. The error is that of reading /proc itself.
func Group(pgid int) (Usage, error) {
	all, err := Groups(pgid)
	return all[pgid], err
}

// Groups is Group of each of pgids, in one scan of /proc; every one of
// pgids has an entry, with Procs 0 where no process is in that group.
func Groups(pgids ...int) (map[int]Usage, error) {
	use := make(map[int]Usage, len(pgids))
	for _, g := range pgids {
		use[g] = Usage{}
	}
	err := scan(func(st Stat) {
		u, ok := use[st.Pgrp]
		if !ok {
			return
		}
		rss, err := RSS(st.Pid)
		if err != nil {
			return // exited in between
		}
		u.add(st, rss)
		use[st.Pgrp] = u
	})
	return use, err
}

// Members lists the processes whose process group is pgid, found by
// scanning /proc; none once the group is gone. A process may have exited,
// or left the group, by the time the caller acts on it: what names it
// safely is a pidfd opened and checked against the Stat.
func Members(pgid int) ([]Stat, error) {
	var in []Stat
	err := scan(func(st Stat) {
		if st.Pgrp == pgid {
			in = append(in, st)
		}
	})
	return in, err
}

// scan calls fn with the Stat of every process in /proc; a process that
// exits while /proc is read is left out. The error is that of reading
// /proc itself.
func scan(fn func(Stat)) error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		st, err := Read(pid)
		if err != nil {
			continue // exited since the directory was read
		}
		fn(st)
	}
	return nil
}
