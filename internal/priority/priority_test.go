package priority

import (
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// threadNices is the nice value of each thread of this process.
func threadNices(t *testing.T) map[int]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]int{}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		if n, err := NiceOf(tid); err == nil {
			m[tid] = n
		}
	}
	return m
}

func TestSetAllReachesEveryThreadAndBack(t *testing.T) {
	start, err := NiceOf(0)
	if err != nil {
		t.Fatal(err)
	}
	if start > 9 {
		t.Skipf("already at nice %d", start)
	}
	// Busy goroutines, so that the runtime runs several threads.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					time.Sleep(time.Microsecond)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(20 * time.Millisecond)

	if err := setAll(level{nice: start + 10}); err != nil {
		t.Fatal(err)
	}
	nices := threadNices(t)
	if len(nices) < 2 {
		t.Fatalf("only %d threads to check", len(nices))
	}
	for tid, n := range nices {
		if n != start+10 {
			t.Errorf("thread %d at nice %d after setAll(%d)", tid, n, start+10)
		}
	}
	if !CanRaise() {
		t.Skip("this process may not raise its priority (no CAP_SYS_NICE): not restoring")
	}
	if err := setAll(level{nice: start}); err != nil {
		t.Fatalf("back to nice %d: %v", start, err)
	}
	for tid, n := range threadNices(t) {
		if n != start {
			t.Errorf("thread %d at nice %d after setAll(%d)", tid, n, start)
		}
	}
}

// niceOf is the nice value of process pid's main thread.
func niceOf(t *testing.T, pid int) int {
	t.Helper()
	n, err := NiceOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestProcessesStartedWhileLoweredGetThePriorityFromBefore(t *testing.T) {
	if !CanRaise() {
		t.Skip("this process may not raise its priority back (no CAP_SYS_NICE)")
	}
	before, err := NiceOf(0)
	if err != nil || before > 9 {
		t.Skipf("nice %d, %v", before, err)
	}
	if err := Lower(10); err != nil {
		t.Fatal(err)
	}
	defer Restore()
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "5")
		if err := Start(cmd.Start); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	cmd := start()
	if got := niceOf(t, cmd.Process.Pid); got != before {
		t.Errorf("a process started while lowered runs at nice %d, want %d (from before Lower)", got, before)
	}
	if got := niceOf(t, os.Getpid()); got != before+10 {
		t.Errorf("this process is at nice %d while lowered, want %d", got, before+10)
	}
	// A plain start inherits the lowered value: Start is what makes the
	// difference.
	plain := exec.Command("sleep", "5")
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { plain.Process.Kill(); plain.Wait() }()
	if got := niceOf(t, plain.Process.Pid); got != before+10 {
		t.Errorf("a process started without Start runs at nice %d, want the lowered %d", got, before+10)
	}
	if err := Restore(); err != nil {
		t.Fatal(err)
	}
	for tid, n := range threadNices(t) {
		if n != before {
			t.Errorf("thread %d at nice %d after Restore, want %d", tid, n, before)
		}
	}
}

func TestIdleReachesEveryThreadAndStartAndRestoreLeaveIt(t *testing.T) {
	if !CanRaise() {
		t.Skip("this process may not raise its priority back (no CAP_SYS_NICE)")
	}
	before, err := NiceOf(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := Idle(); err != nil {
		t.Fatal(err)
	}
	defer Restore()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		if idle, err := IdleOf(tid); err == nil && !idle {
			t.Errorf("thread %d is not in the idle class after Idle", tid)
		}
	}
	cmd := exec.Command("sleep", "5")
	if err := Start(cmd.Start); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if idle, err := IdleOf(cmd.Process.Pid); err != nil || idle {
		t.Errorf("a process started while idle is in the idle class (%v, %v): want the priority from before", idle, err)
	}
	if got := niceOf(t, cmd.Process.Pid); got != before {
		t.Errorf("a process started while idle runs at nice %d, want %d", got, before)
	}
	if err := Restore(); err != nil {
		t.Fatal(err)
	}
	ents, _ = os.ReadDir("/proc/self/task")
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		if idle, err := IdleOf(tid); err == nil && idle {
			t.Errorf("thread %d is still in the idle class after Restore", tid)
		}
	}
	for tid, n := range threadNices(t) {
		if n != before {
			t.Errorf("thread %d at nice %d after Restore, want %d", tid, n, before)
		}
	}
}
