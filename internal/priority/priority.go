package priority

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

// Nice is the nice value of the calling thread.
func Nice() (int, error) {
	// The raw system call returns 20 - nice, so that it is never negative.
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return 0, fmt.Errorf("priority: getpriority: %w", err)
	}
	return 20 - raw, nil
}

// SetAll sets every thread of this process to nice value n (clamped to
// -20..19). Raising a priority (a lower n) needs CAP_SYS_NICE or
// RLIMIT_NICE.
func SetAll(n int) error {
	n = max(-20, min(19, n))
	// Threads may start while the list is read: go over it until a pass
	// finds every thread set.
	for range 5 {
		changed, err := setAllOnce(n)
		if err != nil {
			return err
		}
		if !changed {
			return nil
		}
	}
	return nil
}

func setAllOnce(n int) (changed bool, err error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false, fmt.Errorf("priority: %w", err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
		if err != nil || 20-raw == n {
			continue // gone, or set already
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				continue
			}
			return false, fmt.Errorf("priority: thread %d to nice %d: %w", tid, n, err)
		}
		changed = true
	}
	return changed, nil
}

// CanRaise reports whether this process may raise its priority back after
// lowering it: it tries, on a thread of its own that then ends.
func CanRaise() bool {
	ok := make(chan bool, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and its
		// priority with it.
		runtime.LockOSThread()
		n, err := Nice()
		if err != nil || n >= 19 {
			ok <- false
			return
		}
		if syscall.Setpriority(syscall.PRIO_PROCESS, 0, n+1) != nil {
			ok <- false
			return
		}
		ok <- syscall.Setpriority(syscall.PRIO_PROCESS, 0, n) == nil
	}()
	return <-ok
}
