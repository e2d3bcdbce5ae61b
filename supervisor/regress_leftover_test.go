package supervisor

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"smoothserve/config"
)

// A process that adopts from a state file listing an instance it has no
// slot for (its configuration has fewer) leaves it running until
// StopLeftovers, which after an upgrade waits until the old process has
// exited. Meanwhile its first write drops that instance from the file: a
// crash in between orphans it for good, holding its port (the same hole
// f2de9cd closed for adopted instances).
func TestRegressLeftoverStaysListedUntilStopped(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	stateFile, before := handedOver(t, cfg)

	cfgB := *cfg
	svcB := *cfg.Services[0]
	svcB.InstanceCount = 1
	cfgB.Services = []*config.Service{&svcB}
	cfgB.LogDir = filepath.Join(t.TempDir(), "logs-b")
	prior := readState(t, stateFile)
	b := start(t, &cfgB, func(s *Supervisor) { s.Handoff(stateFile, prior, true) })
	awaitReady(t, b, 5*time.Second)
	leftover := 0
	for port, pid := range before {
		if b.ready()[port] != pid {
			leftover = pid
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.sup.StopLeftovers(ctx)
		syscall.Kill(leftover, syscall.SIGKILL) // in case
	}()
	time.Sleep(300 * time.Millisecond) // keepState has written by now
	if !alive(leftover) {
		t.Fatalf("leftover pid %d gone before StopLeftovers", leftover)
	}
	if got := listed(t, stateFile); !containsPid(got, leftover) {
		t.Errorf("the state file lists %v; leftover pid %d still runs, not yet stopped: a crash now orphans it", got, leftover)
	}
}

func containsPid(m map[int]int, pid int) bool {
	for _, p := range m {
		if p == pid {
			return true
		}
	}
	return false
}
