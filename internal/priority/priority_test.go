package priority

import (
	"os"
	"strconv"
	"sync"
	"syscall"
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
		if raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err == nil {
			m[tid] = 20 - raw
		}
	}
	return m
}

func TestSetAllReachesEveryThreadAndBack(t *testing.T) {
	start, err := Nice()
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

	if err := SetAll(start + 10); err != nil {
		t.Fatal(err)
	}
	nices := threadNices(t)
	if len(nices) < 2 {
		t.Fatalf("only %d threads to check", len(nices))
	}
	for tid, n := range nices {
		if n != start+10 {
			t.Errorf("thread %d at nice %d after SetAll(%d)", tid, n, start+10)
		}
	}
	if !CanRaise() {
		t.Skip("this process may not raise its priority (no CAP_SYS_NICE): not restoring")
	}
	if err := SetAll(start); err != nil {
		t.Fatalf("back to nice %d: %v", start, err)
	}
	for tid, n := range threadNices(t) {
		if n != start {
			t.Errorf("thread %d at nice %d after SetAll(%d)", tid, n, start)
		}
	}
}
