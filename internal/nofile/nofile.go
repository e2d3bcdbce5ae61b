package nofile

import (
	"errors"
	"fmt"
	"syscall"
)

// Raise raises this process's soft limit of open files to its hard limit
// and returns it. Go raises its own soft limit at start but gives a child
// the limit the process started with; once set by Setrlimit (Go 1.21+),
// the raised one is what every child inherits.
func Raise() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %w", lim.Max, err)
	}
	return lim.Cur, nil
}

// Exhausted reports whether err says that this process (EMFILE) or the
// system (ENFILE) had no file descriptor left.
func Exhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
