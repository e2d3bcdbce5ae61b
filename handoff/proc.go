package handoff

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"smoothserve/internal/procstat"
)

// ErrGone is wrapped by errors about a pid that does not exist or is a
// zombie: the recorded process has exited.
var ErrGone = errors.New("process is gone")

const deletedSuffix = " (deleted)"

// readStat reads /proc/PID/stat. A pid that does not exist wraps ErrGone.
func readStat(pid int) (procstat.Stat, error) {
	if pid <= 0 {
		return procstat.Stat{}, fmt.Errorf("pid %d: not a process id", pid)
	}
	st, err := procstat.Read(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return procstat.Stat{}, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	if err != nil {
		return procstat.Stat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return st, nil
}

// readExe returns readlink /proc/PID/exe as the kernel gives it, with
// " (deleted)" when the binary was unlinked or renamed over.
func readExe(pid int) (string, error) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		// A process that exits between the stat and the readlink loses its
		// exe link (so does a kernel thread, which never has one).
		if st, serr := readStat(pid); serr != nil || st.Exited() {
			return "", fmt.Errorf("pid %d: %w", pid, ErrGone)
		}
		return "", fmt.Errorf("pid %d: reading exe: %w", pid, err)
	}
	return exe, nil
}

// Identity is what the state file records to recognise a process later.
type Identity struct {
	StartTime uint64 // /proc/PID/stat field 22
	Session   int    // field 6: to tell its group's members once it exited (Leftover)
	Exe       string // its executable, " (deleted)" trimmed
}

// Identify returns process pid's Identity. A pid that does not exist or is
// a zombie wraps ErrGone.
func Identify(pid int) (Identity, error) {
	st, err := readStat(pid)
	if err != nil {
		return Identity{}, err
	}
	if st.Exited() {
		return Identity{}, fmt.Errorf("pid %d: zombie: %w", pid, ErrGone)
	}
	exe, err := readExe(pid)
	if err != nil {
		return Identity{}, err
	}
	return Identity{StartTime: st.StartTime, Session: st.Session, Exe: strings.TrimSuffix(exe, deletedSuffix)}, nil
}

// Verify returns the Identity of in.Pid if it is still the process
// recorded in in: it runs (is not a zombie), has the recorded start time
// and runs the recorded executable, or that executable " (deleted)" (a
// binary replaced by rename while the instance ran). The Identity has the
// session read now, which a state file of an older version did not
// record. Otherwise it says which check failed; a pid that does not exist
// or is a zombie wraps ErrGone.
func Verify(in Instance) (Identity, error) {
	st, err := verify(in)
	if err != nil {
		return Identity{}, err
	}
	return Identity{StartTime: st.StartTime, Session: st.Session, Exe: in.Exe}, nil
}

// verify is Verify, and the stat it read of the process.
func verify(in Instance) (procstat.Stat, error) {
	st, err := readStat(in.Pid)
	if err != nil {
		return st, fmt.Errorf("verifying %s: %w", in, err)
	}
	if st.Exited() {
		return st, fmt.Errorf("verifying %s: pid %d is a zombie: %w", in, in.Pid, ErrGone)
	}
	if st.StartTime != in.StartTime {
		return st, fmt.Errorf("verifying %s: pid %d is another process now (start time %d ≠ %d)",
			in, in.Pid, st.StartTime, in.StartTime)
	}
	if in.Exe == "" {
		return st, nil
	}
	exe, err := readExe(in.Pid)
	if err != nil {
		return st, fmt.Errorf("verifying %s: %w", in, err)
	}
	if exe != in.Exe && exe != in.Exe+deletedSuffix {
		return st, fmt.Errorf("verifying %s: pid %d runs another executable now (%s ≠ %s)",
			in, in.Pid, exe, in.Exe)
	}
	return st, nil
}
