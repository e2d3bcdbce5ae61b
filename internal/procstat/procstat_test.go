package procstat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseCommWithSpacesAndParens(t *testing.T) {
	// Fields 3 to 22 and a few more, as the kernel writes them.
	rest := " S 1 77 70 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 3 0 987654 1000 42 18446744073709551615\n"
	tests := []struct{ line, comm string }{
		{"12 (sleep)" + rest, "sleep"},
		{"12 (my worker)" + rest, "my worker"},
		{"12 (a) S 9 9 (b))" + rest, "a) S 9 9 (b)"},
		{"12 ()" + rest, ""},
		{"12 ((x)" + rest, "(x"},
	}
	for _, tt := range tests {
		st, err := parse(12, []byte(tt.line))
		if err != nil {
			t.Errorf("parse(%q): %v", tt.line, err)
			continue
		}
		want := Stat{Pid: 12, Comm: tt.comm, State: 'S', Ppid: 1, Pgrp: 77, Session: 70, UTime: 250, STime: 130, StartTime: 987654}
		if st != want {
			t.Errorf("parse(%q) = %+v, want %+v", tt.line, st, want)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	full := "12 (x) S 1 77 70 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 3 0 987654"
	tests := []struct{ line, want string }{
		{"", "malformed /proc/12/stat"},
		{"12 x) S 1", "malformed /proc/12/stat"},
		{"12 )x( S 1 77", "malformed /proc/12/stat"},
		{strings.TrimSuffix(full, " 987654"), "malformed /proc/12/stat"}, // no field 22
		{strings.Replace(full, " S ", " SS ", 1), "malformed /proc/12/stat"},
		{strings.Replace(full, " S 1 ", " S one ", 1), "malformed /proc/12/stat: ppid: "},
		{strings.Replace(full, " 250 ", " -250 ", 1), "malformed /proc/12/stat: utime: "},
		{strings.Replace(full, "987654", "soon", 1), "malformed /proc/12/stat: start time: "},
	}
	for _, tt := range tests {
		st, err := parse(12, []byte(tt.line))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || st != (Stat{}) {
			t.Errorf("parse(%q) = %+v, %v; want an error %q…", tt.line, st, err, tt.want)
		}
	}
}

func TestReadSelf(t *testing.T) {
	burn(50 * time.Millisecond)
	before := selfCPU(t)
	st, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	after := selfCPU(t)
	exe, _ := os.Executable()
	if want := filepath.Base(exe); st.Comm != want[:min(len(want), 15)] {
		t.Errorf("Comm = %q, want %q", st.Comm, want[:min(len(want), 15)])
	}
	// The state is the main thread's, which may sleep while this one reads.
	if st.Pid != os.Getpid() || st.Ppid != os.Getppid() || st.Pgrp != syscall.Getpgrp() || (st.State != 'R' && st.State != 'S') {
		t.Errorf("Read(self) = %+v, want pid %d, ppid %d, pgrp %d, state R or S",
			st, os.Getpid(), os.Getppid(), syscall.Getpgrp())
	}
	// getrusage counts the same time, more finely than in clock ticks.
	slack := 3 * time.Second / time.Duration(ClockTicks())
	if st.CPU() < before-slack || st.CPU() > after+slack || st.StartTime == 0 || st.Exited() {
		t.Errorf("Read(self) = %+v: CPU %v, want between %v and %v (getrusage), a start time, not exited",
			st, st.CPU(), before, after)
	}
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 || rss%int64(os.Getpagesize()) != 0 {
		t.Errorf("RSS(self) = %d, %v: want whole pages, at least 1 MiB", rss, err)
	}
}

func TestReadGone(t *testing.T) {
	cmd := startHelper(t, "true")
	cmd.Wait()
	if _, err := Read(cmd.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a reaped pid: %v, want fs.ErrNotExist", err)
	}
	if _, err := RSS(cmd.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RSS of a reaped pid: %v, want fs.ErrNotExist", err)
	}
}

func TestReadChildAndZombie(t *testing.T) {
	self, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cmd := startHelper(t, "sleep", "60")
	pid := cmd.Process.Pid
	st, err := Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ppid != os.Getpid() || st.Pgrp != pid || st.StartTime < self.StartTime || st.Exited() {
		t.Errorf("child = %+v, want ppid %d, pgrp %d, started after us (%d), running", st, os.Getpid(), pid, self.StartTime)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, func() bool { st, err := Read(pid); return err == nil && st.Exited() })
}

func TestClockTicks(t *testing.T) {
	if hz := ClockTicks(); hz != 100 {
		t.Logf("USER_HZ is %d", hz) // 100 on every architecture this is tested on
	}
	if got := ticks(250); got != 250*time.Second/time.Duration(ClockTicks()) {
		t.Errorf("ticks(250) = %v", got)
	}
	// A century of CPU time: n × time.Second alone would overflow.
	const century = 100 * 365 * 24 * time.Hour
	if got := ticks(uint64(century/time.Second) * ClockTicks()); got != century {
		t.Errorf("ticks of a century = %v, want %v", got, century)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// burn spins until this process has taken d of CPU time at least.
func burn(d time.Duration) {
	var ru syscall.Rusage
	for syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil &&
		time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) < d {
	}
}

// selfCPU is this process's CPU time, user and system, as getrusage says.
func selfCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readProc reads a /proc file whole, however long, and its errors are
// os.ReadFile's: a file that does not exist is fs.ErrNotExist.
func TestReadProc(t *testing.T) {
	for _, path := range []string{"/proc/self/stat", "/proc/self/maps", "/proc/self/status"} {
		got, err := readProc(path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The files change between reads (times, memory); their first
		// line's first field, and a length of the same order, do not.
		if len(got) == 0 || len(got) < len(want)/2 || len(got) > 2*len(want) ||
			strings.Fields(string(got))[0] != strings.Fields(string(want))[0] {
			t.Errorf("readProc(%s): %d bytes beginning %.40q, os.ReadFile %d beginning %.40q", path, len(got), got, len(want), want)
		}
	}
	if _, err := readProc("/proc/0/stat"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/proc/0/stat") {
		t.Errorf("readProc of a pid that does not exist: %v, want fs.ErrNotExist naming the file", err)
	}
}
