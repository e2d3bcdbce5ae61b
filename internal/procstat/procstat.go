package procstat

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Stat is what Read takes from /proc/PID/stat (proc(5)); field numbers
// count from 1.
type Stat struct {
	Pid       int
	Comm      string // field 2, without its parentheses: at most 15 bytes of the executable's name
	State     byte   // field 3: R, S, D, T, Z (zombie), X (dead)…
	Ppid      int    // field 4
	Pgrp      int    // field 5: the process group
	Session   int    // field 6: the session
	UTime     uint64 // field 14: user CPU time, clock ticks
	STime     uint64 // field 15: system CPU time, clock ticks
	StartTime uint64 // field 22: clock ticks after boot; with Pid it names one process during a boot
}

// CPU is the process's CPU time, user and system (utime + stime); its
// Seconds() is the time in seconds.
func (s Stat) CPU() time.Duration { return ticks(s.UTime + s.STime) }

// Exited reports whether the process has exited: a zombie its parent has
// not reaped yet, or dead.
func (s Stat) Exited() bool { return s.State == 'Z' || s.State == 'X' }

// Read reads /proc/PID/stat. An error of reading it is returned as it is
// (a pid that does not exist: errors.Is(err, fs.ErrNotExist)); one of a
// file it cannot parse says "malformed /proc/PID/stat".
func Read(pid int) (Stat, error) {
	b, err := readProc("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return parse(pid, b)
}

// readProc reads a small file of /proc whole, as os.ReadFile would but in
// three system calls or four: an os.File's open also offers the file to
// the poller (fcntl, epoll_ctl, refused, fcntl) and ReadFile stats it for
// a size that /proc files do not give. An instance's start and the
// daemon's status read these files for every process.
func readProc(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

// parse reads the text of /proc/PID/stat: "pid (comm) state ppid …".
func parse(pid int, b []byte) (Stat, error) {
	// comm may itself hold spaces and ") ": the fields after it are
	// counted from the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[end+1:])) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	st := Stat{Pid: pid, Comm: string(b[open+1 : end]), State: f[0][0]}
	field := func(n int) string { return f[n-3] } // field n of proc(5)
	var err error
	if st.Ppid, err = strconv.Atoi(field(4)); err != nil {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat: ppid: %w", pid, err)
	}
	if st.Pgrp, err = strconv.Atoi(field(5)); err != nil {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat: pgrp: %w", pid, err)
	}
	if st.Session, err = strconv.Atoi(field(6)); err != nil {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat: session: %w", pid, err)
	}
	if st.UTime, err = strconv.ParseUint(field(14), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat: utime: %w", pid, err)
	}
	if st.STime, err = strconv.ParseUint(field(15), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat: stime: %w", pid, err)
	}
	if st.StartTime, err = strconv.ParseUint(field(22), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("malformed /proc/%d/stat: start time: %w", pid, err)
	}
	return st, nil
}

// RSS is the resident set size of process pid in bytes: the second field
// of /proc/PID/statm (pages) times the page size. Pages a process shares
// with others (its parent's, after a fork) count in each one's RSS.
func RSS(pid int) (int64, error) {
	_, rss, err := Memory(pid)
	return rss, err
}

// Memory is process pid's virtual memory size and resident set size in
// bytes: the first two fields of /proc/PID/statm (pages) times the page
// size.
func Memory(pid int) (virtual, resident int64, err error) {
	b, err := readProc("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/statm", pid)
	}
	size, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc/%d/statm: size: %w", pid, err)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc/%d/statm: resident: %w", pid, err)
	}
	page := int64(os.Getpagesize())
	return size * page, pages * page, nil
}

// atClkTck is AT_CLKTCK of linux/auxvec.h: the auxiliary vector entry that
// holds USER_HZ.
const atClkTck = 17

// ClockTicks is the kernel's clock ticks a second (USER_HZ), the unit of
// the times in /proc/PID/stat.
var ClockTicks = sync.OnceValue(func() uint64 {
	if vec, err := unix.Auxv(); err == nil {
		for _, kv := range vec {
			if kv[0] == atClkTck && kv[1] > 0 {
				return uint64(kv[1])
			}
		}
	}
	return 100 // USER_HZ on every architecture Go runs on but alpha
})

// ticks converts clock ticks to a duration, without overflowing for any
// time a process can have run.
func ticks(n uint64) time.Duration {
	hz := ClockTicks()
	return time.Duration(n/hz)*time.Second + time.Duration(n%hz)*time.Second/time.Duration(hz)
}
