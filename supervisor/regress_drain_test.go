package supervisor

import (
	"errors"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/control/api"
	"smoothserve/handoff"
	"smoothserve/upstream"
)

// Regression (review): the last-instance rule looks only at what is in rotation this
// very moment. With web#1 drained, web#0 crashing (its slot in backoff,
// then starting) has nothing in rotation, so draining web#0 is let through
// without --force: once web#0 is back, it is drained too, and the service
// has no instance in rotation at all, for good.
func TestDrainLastSlotWhileItRestarts(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	ctx := drainCtx(t)
	if err := h.sup.DrainInstance(ctx, "web", 1, false); err != nil {
		t.Fatal(err)
	}
	old := h.instances()[0].Pid
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "web#0 out of rotation after its crash", func() bool { return len(h.inRotation()) == 0 })
	err := h.sup.DrainInstance(ctx, "web", 0, false)
	eventually(t, 5*time.Second, "web#0 restarted", func() bool {
		in := h.instances()[0]
		return in.Pid != old && in.Pid != 0 && (in.State == StateReady || in.State == StateDrained)
	})
	time.Sleep(100 * time.Millisecond)
	if err == nil && len(h.inRotation()) == 0 {
		t.Fatalf("drain web#0 (no --force) while it restarted: accepted; now every slot is drained and nothing is in rotation (states %v); want ErrLastInstance", h.states())
	}
	if err != nil && !errors.Is(err, api.ErrLastInstance) {
		t.Fatalf("drain web#0: %v, want ErrLastInstance", err)
	}
}

// Regression (review): Apply shrinking instance_count drops the slots from the end,
// whether or not they are the ones in rotation. With web#0 drained, going
// from 2 instances to 1 drops web#1, the only instance in rotation: the
// service is left with nothing in rotation, and Apply says nothing.
func TestApplyShrinkDropsTheOnlyUndrained(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	ctx := drainCtx(t)
	if err := h.sup.DrainInstance(ctx, "web", 0, false); err != nil {
		t.Fatal(err)
	}
	next := *cfg.Services[0]
	next.InstanceCount = 1
	next.RestartStrategy = config.StrategyInPlace // a surge would want slot 1's port for web#0's replacement
	_, err := h.sup.Apply(ctx, &next, "test")
	t.Logf("Apply: %v; in rotation %v; states %v", err, h.inRotation(), h.states())
	if got := h.inRotation(); err == nil && len(got) == 0 {
		t.Fatalf("Apply instance_count 2 -> 1 with web#0 drained: ok, and nothing is in rotation now (states %v); want it refused, or an instance left in rotation", h.states())
	}
}

// Regression (review): drainSlot does not rebalance. With web#1 unhealthy (out, as
// web#0 is healthy), drain --force web#0 leaves nothing in rotation,
// although balance's rule (health.go: "a check never leaves the service
// with nowhere to send requests") puts web#1 back as soon as any other
// event runs balance: what is in rotation depends on an unrelated event.
func TestForcedDrainDoesNotRebalance(t *testing.T) {
	cfg := healthConfig(t, 2, 0)
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	h.setHealth(t, 1, true)
	eventually(t, 3*time.Second, "web#1 out of rotation, unhealthy", func() bool {
		return slices.Equal(h.inRotation(), []int{0}) && h.instances()[1].State == StateUnhealthy
	})
	if err := h.sup.DrainInstance(drainCtx(t), "web", 0, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // checks keep failing: no event
	if got := h.inRotation(); !slices.Equal(got, []int{1}) {
		t.Fatalf("in rotation after drain --force web#0: %v, want [1] (the unhealthy one, as balance keeps when none is healthy)", got)
	}
}

// Regression (review): restoreDrained reads the prior state the supervisor started
// with, whenever a service's run goroutine begins: a service removed and
// added back by a reload, long after the operator undrained its slot, has
// the slot drained again.
func TestReaddedServiceIsNotDrainedAgain(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	stateFile := filepath.Join(cfg.Dir, "state.json")
	if err := handoff.Write(stateFile, &handoff.State{Version: 1, Services: map[string]string{}, Drained: map[string][]int{"web": {1}}}); err != nil {
		t.Fatal(err)
	}
	h := startWith(t, cfg, stateFile)
	awaitReady(t, h, 10*time.Second)
	if got := h.states(); !slices.Equal(got, []State{StateReady, StateDrained}) {
		t.Fatalf("states at start: %v, want web#1 drained as the state file says", got)
	}
	ctx := drainCtx(t)
	if err := h.sup.UndrainInstance(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.RemoveService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	set := upstream.NewSet("web", cfg.Services[0].StartTimeout)
	h.set = set
	if err := h.sup.AddService(cfg.Services[0], set); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "web ready again", func() bool {
		st := h.sup.Status()
		return len(st) == 1 && h.sup.readyCountOf("web") == 2
	})
	if got := h.states(); !slices.Equal(got, []State{StateReady, StateReady}) {
		t.Fatalf("states after web was removed and added back: %v, want both ready: web#1 was undrained", got)
	}
}

func (s *Supervisor) readyCountOf(name string) int {
	for _, sv := range s.list() {
		if sv.cfg().Name == name {
			return sv.readyCount()
		}
	}
	return 0
}
