package supervisor

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestShutdownStopsEverything(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	cfg := testConfig(t, 3, "grandchild")
	// The grandchildren ignore SIGTERM: they get SIGKILL after the grace.
	h := start(t, cfg, func(s *Supervisor) { s.termGrace = 500 * time.Millisecond })
	awaitReady(t, h, 5*time.Second)
	eventually(t, 10*time.Second, "grandchildren start", func() bool { return len(childPids(t, cfg)) == 6 })
	var instances []int
	for _, in := range h.instances() {
		instances = append(instances, in.Pid)
	}

	if err := h.stop(t, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The instances are reaped, and their groups gone, before Run returns.
	for _, pid := range instances {
		if !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			t.Errorf("instance pid %d still exists after Run returned", pid)
		}
	}
	for _, pid := range childPids(t, cfg) {
		if alive(pid) {
			t.Errorf("grandchild pid %d still runs after Run returned", pid)
		}
	}
	if n := len(h.set.Backends()); n != 0 {
		t.Errorf("%d backends in rotation, want none", n)
	}
	if st := h.sup.Status()[0]; st.State != ServiceStopped || len(st.Instances) != 0 {
		t.Errorf("Status() = %+v, want stopped without instances", st)
	}
	eventually(t, 2*time.Second, "the supervisor's goroutines exit", func() bool {
		return runtime.NumGoroutine() <= goroutines+1 // +1: start's Run goroutine may not have returned yet
	})
}

func TestDrainWaitsForRequests(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	b := h.set.Pick(nil) // a request in flight on b
	busy, other := h.instances()[b.Slot].Pid, h.instances()[1-b.Slot].Pid

	h.cancel()
	eventually(t, 2*time.Second, "the idle instance stops", func() bool { return !alive(other) })
	time.Sleep(300 * time.Millisecond)
	if !alive(busy) {
		t.Fatal("the busy instance stopped with a request in flight")
	}
	var got State = -1
	for _, in := range h.instances() {
		if in.Pid == busy {
			got = in.State
		}
	}
	if got != StateDraining {
		t.Errorf("busy instance is %v, want draining", got)
	}
	if slices.Contains(h.set.Backends(), b) {
		t.Error("the draining backend is still in rotation")
	}
	b.Release(true)
	eventually(t, 2*time.Second, "the busy instance stops after Release", func() bool { return !alive(busy) })
	if err := h.stop(t, 5*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestDrainGivesUpAfterStopTimeout(t *testing.T) {
	cfg := testConfig(t, 1, "normal")
	cfg.Services[0].StopTimeout = 400 * time.Millisecond
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	b := h.set.Pick(nil)
	defer b.Release(false)
	pid := h.instances()[0].Pid

	begin := time.Now()
	h.cancel()
	time.Sleep(200 * time.Millisecond)
	// Judged only while StopTimeout has not passed: a loaded machine may
	// wake this test after it.
	if !alive(pid) && time.Since(begin) < cfg.Services[0].StopTimeout {
		t.Fatal("the instance stopped before StopTimeout with a request in flight")
	}
	if err := h.stop(t, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(begin); d < 400*time.Millisecond {
		t.Errorf("stopped after %v, want StopTimeout (400ms) first", d)
	}
	if alive(pid) {
		t.Error("instance still running after Run returned")
	}
	if !strings.Contains(readLog(t, cfg), "stopping with 1 requests in flight") {
		t.Error("log does not say the instance stopped with a request in flight")
	}
}

func TestSigtermIgnoredGetsSigkill(t *testing.T) {
	cfg := testConfig(t, 2, "normal", "CHILD_IGNORE_TERM=1")
	h := start(t, cfg, func(s *Supervisor) { s.termGrace = 300 * time.Millisecond })
	awaitReady(t, h, 5*time.Second)
	begin := time.Now()
	if err := h.stop(t, 5*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(begin); d < 300*time.Millisecond {
		t.Errorf("stopped after %v, want the SIGTERM grace (300ms) first", d)
	}
	if !strings.Contains(readLog(t, cfg), "stopped: signal: killed") {
		t.Error("log does not say the instance was killed")
	}
}

func TestKill(t *testing.T) {
	cfg := testConfig(t, 3, "normal", "CHILD_IGNORE_TERM=1")
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	b := h.set.Pick(nil) // the graceful stop would wait for it: 5s
	defer b.Release(false)
	pids := childPids(t, cfg)

	h.cancel()
	time.Sleep(100 * time.Millisecond)
	begin := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(h.sup.Kill)
	}
	wg.Wait()
	// At once, that is: without Kill, Run would wait the request's
	// StopTimeout (5 s) first; a loaded machine takes a moment.
	if err := h.stop(t, 4*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("Run returned %v after Kill, want at once", d)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still running", pid)
		}
	}
	h.sup.Kill() // and again, after Run
}

func TestKillBeforeRunStartsNothing(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg, (*Supervisor).Kill)
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after Kill")
	}
	if pids := childPids(t, cfg); len(pids) != 0 {
		t.Errorf("started %v after Kill", pids)
	}
}
