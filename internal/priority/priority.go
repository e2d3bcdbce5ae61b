package priority

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
)

// state is what Lower did. mu owns it, and is held while Start runs.
var state struct {
	mu      sync.Mutex
	lowered bool
	base    int // the nice value before Lower: what Start gives processes
	now     int // the nice value the process's threads are set to
}

// Lower raises the nice value of the whole process by by (clamped to 19).
// Processes started through Start still get the value from before.
func Lower(by int) error {
	state.mu.Lock()
	defer state.mu.Unlock()
	n, err := NiceOf(0)
	if err != nil {
		return err
	}
	if !state.lowered {
		state.base = n
	}
	target := min(19, n+by)
	if err := setAll(target); err != nil {
		return err
	}
	state.lowered, state.now = true, target
	return nil
}

// Restore undoes Lower: every thread back to the nice value from before.
// It needs the right to raise a priority (CanRaise).
func Restore() error {
	state.mu.Lock()
	defer state.mu.Unlock()
	if !state.lowered {
		return nil
	}
	if err := setAll(state.base); err != nil {
		return err
	}
	state.lowered = false
	return nil
}

// Start runs start, which starts a process (os/exec's Cmd.Start), so that
// the process gets this process's priority from before Lower: a process
// inherits the nice value of the thread that forks it, so start runs on a
// thread set to that value for the while.
func Start(start func() error) error {
	state.mu.Lock()
	defer state.mu.Unlock()
	if !state.lowered {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, state.base); err != nil {
		return fmt.Errorf("priority: starting a process at nice %d: %w", state.base, err)
	}
	err := start()
	// Lowering a thread's priority needs no right.
	syscall.Setpriority(syscall.PRIO_PROCESS, 0, state.now)
	return err
}

// NiceOf is the nice value of thread tid (a process's main thread has its
// pid); 0 is the calling thread.
func NiceOf(tid int) (int, error) {
	// The raw system call returns 20 - nice, so that it is never negative.
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return 0, fmt.Errorf("priority: nice value of thread %d: %w", tid, err)
	}
	return 20 - raw, nil
}

// setAll sets every thread of this process to nice value n (clamped to
// -20..19). Raising a priority (a lower n) needs CAP_SYS_NICE or
// RLIMIT_NICE.
func setAll(n int) error {
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
	return fmt.Errorf("priority: threads still starting at another nice value than %d after 5 passes", n)
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
		if now, err := NiceOf(tid); err != nil || now == n {
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
		n, err := NiceOf(0)
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
