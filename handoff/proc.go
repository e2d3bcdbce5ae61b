package handoff

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// ErrGone is wrapped by errors about a pid that does not exist or is a
// zombie: the recorded process has exited.
var ErrGone = errors.New("process is gone")

const deletedSuffix = " (deleted)"

// procStat is what this package reads from /proc/PID/stat.
type procStat struct {
	state     byte   // field 3: R, S, D, Z, X…
	ppid      int    // field 4
	startTime uint64 // field 22, clock ticks after boot
}

// readStat reads /proc/PID/stat. A pid that does not exist wraps ErrGone.
func readStat(pid int) (procStat, error) {
	if pid <= 0 {
		return procStat{}, fmt.Errorf("pid %d: not a process id", pid)
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return procStat{}, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	if err != nil {
		return procStat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	// Field 2 is the command in parentheses and may itself hold ") ", so
	// the fields are counted from the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("pid %d: malformed /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(data[i+1:])) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("pid %d: malformed /proc/%d/stat", pid, pid)
	}
	var st procStat
	st.state = f[0][0]
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("pid %d: malformed /proc/%d/stat: ppid: %w", pid, pid, err)
	}
	if st.startTime, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("pid %d: malformed /proc/%d/stat: start time: %w", pid, pid, err)
	}
	return st, nil
}

func (s procStat) exited() bool { return s.state == 'Z' || s.state == 'X' }

// readExe returns readlink /proc/PID/exe as the kernel gives it, with
// " (deleted)" when the binary was unlinked or renamed over.
func readExe(pid int) (string, error) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		// A process that exits between the stat and the readlink loses its
		// exe link (so does a kernel thread, which never has one).
		if st, serr := readStat(pid); serr != nil || st.exited() {
			return "", fmt.Errorf("pid %d: %w", pid, ErrGone)
		}
		return "", fmt.Errorf("pid %d: reading exe: %w", pid, err)
	}
	return exe, nil
}

// Identify returns what the state file records to recognise process pid
// later: its start time and its executable, " (deleted)" trimmed. A pid
// that does not exist or is a zombie wraps ErrGone.
func Identify(pid int) (startTime uint64, exe string, err error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, "", err
	}
	if st.exited() {
		return 0, "", fmt.Errorf("pid %d: zombie: %w", pid, ErrGone)
	}
	exe, err = readExe(pid)
	if err != nil {
		return 0, "", err
	}
	return st.startTime, strings.TrimSuffix(exe, deletedSuffix), nil
}

// Verify returns nil if in.Pid is still the process recorded in in: it
// runs (is not a zombie), has the recorded start time and runs the
// recorded executable, or that executable " (deleted)" (a binary replaced
// by rename while the instance ran). Otherwise it says which check failed;
// a pid that does not exist or is a zombie wraps ErrGone.
func Verify(in Instance) error {
	st, err := readStat(in.Pid)
	if err != nil {
		return fmt.Errorf("verifying %s: %w", in, err)
	}
	if st.exited() {
		return fmt.Errorf("verifying %s: pid %d is a zombie: %w", in, in.Pid, ErrGone)
	}
	if st.startTime != in.StartTime {
		return fmt.Errorf("verifying %s: pid %d is another process now (start time %d ≠ %d)",
			in, in.Pid, st.startTime, in.StartTime)
	}
	if in.Exe == "" {
		return nil
	}
	exe, err := readExe(in.Pid)
	if err != nil {
		return fmt.Errorf("verifying %s: %w", in, err)
	}
	if exe != in.Exe && exe != in.Exe+deletedSuffix {
		return fmt.Errorf("verifying %s: pid %d runs another executable now (%s ≠ %s)",
			in, in.Pid, exe, in.Exe)
	}
	return nil
}
