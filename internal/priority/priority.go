package priority

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A level is what a thread's CPU priority is set to: a nice value in the
// normal class, or the idle class (SCHED_IDLE: the thread runs on CPU that
// no normal thread wants).
type level struct {
	nice int
	idle bool
}

// state is what Lower or Idle did. mu owns it, and is held while Start
// runs.
var state struct {
	mu      sync.Mutex
	lowered bool
	base    level // the level before: what Start gives processes
	now     level // the level the process's threads are set to
}

// Lower raises the nice value of the whole process by by (clamped to 19).
// Processes started through Start still get the priority from before.
func Lower(by int) error {
	return lower(func(cur level) level { return level{nice: min(19, cur.nice+by)} })
}

// Idle puts the whole process in the idle class: it runs only on CPU that
// the processes of the normal class leave, however many, whatever their
// nice values (Linux gives it a sliver even then, so it is never starved
// for good). Processes started through Start still get the priority from
// before.
func Idle() error {
	return lower(func(cur level) level { return level{nice: cur.nice, idle: true} })
}

// lower sets every thread to the level to gives the calling thread's
// level now, and keeps the level from before the first lowering for
// Restore and Start.
func lower(to func(cur level) level) error {
	state.mu.Lock()
	defer state.mu.Unlock()
	cur, err := levelOf(0)
	if err != nil {
		return err
	}
	target := to(cur)
	if !state.lowered {
		state.base = cur
	}
	if err := setAll(target); err != nil {
		return err
	}
	state.lowered, state.now = true, target
	return nil
}

// Restore undoes Lower and Idle: every thread back to the priority from
// before. It needs the right to raise a priority (CanRaise).
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
// the process gets this process's priority from before Lower or Idle: a
// process inherits the priority of the thread that forks it, so start runs
// on a thread set to that priority for the while.
func Start(start func() error) error {
	state.mu.Lock()
	defer state.mu.Unlock()
	if !state.lowered {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := setThread(0, state.base); err != nil {
		return fmt.Errorf("priority: starting a process at %s: %w", state.base, err)
	}
	err := start()
	// Lowering a thread's priority needs no right.
	setThread(0, state.now)
	return err
}

func (l level) String() string {
	if l.idle {
		return "the idle class"
	}
	return fmt.Sprintf("nice %d", l.nice)
}

// levelOf is thread tid's level; 0 is the calling thread.
func levelOf(tid int) (level, error) {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return level{}, fmt.Errorf("priority: scheduling of thread %d: %w", tid, err)
	}
	return level{nice: int(a.Nice), idle: a.Policy == unix.SCHED_IDLE}, nil
}

// setThread sets thread tid (0: the calling thread) to l, its class and
// nice value at once.
func setThread(tid int, l level) error {
	policy := uint32(unix.SCHED_NORMAL)
	if l.idle {
		policy = unix.SCHED_IDLE
	}
	return unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy, Nice: int32(l.nice)}, 0)
}

// IdleOf reports whether thread tid (a process's main thread has its pid;
// 0 is the calling thread) is in the idle class.
func IdleOf(tid int) (bool, error) {
	l, err := levelOf(tid)
	return l.idle, err
}

// NiceOf is the nice value of thread tid (a process's main thread has its
// pid); 0 is the calling thread.
func NiceOf(tid int) (int, error) {
	l, err := levelOf(tid)
	return l.nice, err
}

// setAll sets every thread of this process to l (its nice value clamped
// to -20..19). Raising a priority (a lower nice value, or from the idle
// class to the normal one) needs CAP_SYS_NICE or RLIMIT_NICE.
func setAll(l level) error {
	l.nice = max(-20, min(19, l.nice))
	// Threads may start while the list is read: go over it until a pass
	// finds every thread set.
	for range 5 {
		changed, err := setAllOnce(l)
		if err != nil {
			return err
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("priority: threads still starting at another priority than %s after 5 passes", l)
}

func setAllOnce(l level) (changed bool, err error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false, fmt.Errorf("priority: %w", err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if now, err := levelOf(tid); err != nil || now == l {
			continue // gone, or set already
		}
		if err := setThread(tid, l); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				continue
			}
			return false, fmt.Errorf("priority: thread %d to %s: %w", tid, l, err)
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
