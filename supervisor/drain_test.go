package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/control/api"
	"smoothserve/handoff"
)

func drainCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A drained instance leaves rotation and keeps running; the last one in
// rotation is refused unless forced; undrained, it comes back.
func TestDrainInstanceOutAndBack(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	ctx := drainCtx(t)
	pid := h.instances()[1].Pid

	if err := h.sup.DrainInstance(ctx, "web", 1, false); err != nil {
		t.Fatalf("drain web#1: %v", err)
	}
	if got := h.inRotation(); !slices.Equal(got, []int{0}) {
		t.Fatalf("in rotation after drain web#1: %v, want [0]", got)
	}
	if in := h.instances()[1]; in.State != StateDrained || in.Pid != pid || !alive(pid) {
		t.Fatalf("web#1 after drain: %+v, want drained, pid %d running", in, pid)
	}
	if err := h.sup.DrainInstance(ctx, "web", 1, false); err != nil {
		t.Errorf("draining web#1 again: %v, want nothing to do", err)
	}

	err := h.sup.DrainInstance(ctx, "web", 0, false)
	if !errors.Is(err, api.ErrLastInstance) || !strings.Contains(err.Error(), "web#0 is the last instance of its service in rotation") ||
		!strings.Contains(err.Error(), "--force") {
		t.Fatalf("drain of the last one in rotation: %v, want ErrLastInstance naming web#0 and --force", err)
	}
	if got := h.inRotation(); !slices.Equal(got, []int{0}) {
		t.Fatalf("a refused drain changed the rotation: %v", got)
	}
	if err := h.sup.DrainInstance(ctx, "web", 0, true); err != nil {
		t.Fatalf("drain --force of the last one: %v", err)
	}
	if got := h.inRotation(); len(got) != 0 {
		t.Fatalf("in rotation after forcing: %v, want none", got)
	}

	for _, slot := range []int{0, 1} {
		if err := h.sup.UndrainInstance(ctx, "web", slot); err != nil {
			t.Fatalf("undrain web#%d: %v", slot, err)
		}
	}
	if got := h.inRotation(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("in rotation after undrain: %v, want [0 1]", got)
	}
	if !h.serveOne(1, 100) {
		t.Error("web#1 never picked after undrain")
	}
	if got := h.states(); !slices.Equal(got, []State{StateReady, StateReady}) {
		t.Errorf("states after undrain: %v", got)
	}
	log := readLog(t, cfg)
	for _, want := range []string{fmt.Sprintf("web#1 pid %d out of rotation, as the operator asked", pid),
		fmt.Sprintf("web#1 pid %d back in rotation, as the operator asked", pid)} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestDrainInstanceErrors(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	ctx := drainCtx(t)
	if err := h.sup.DrainInstance(ctx, "web", 2, false); !errors.Is(err, api.ErrUnknownInstance) || !strings.Contains(err.Error(), "web has slots 0 to 1") {
		t.Errorf("drain web#2: %v, want ErrUnknownInstance saying the slots", err)
	}
	if err := h.sup.UndrainInstance(ctx, "web", -1); !errors.Is(err, api.ErrUnknownInstance) {
		t.Errorf("undrain web#-1: %v, want ErrUnknownInstance", err)
	}
	if err := h.sup.DrainInstance(ctx, "nope", 0, false); !errors.Is(err, ErrUnknownService) {
		t.Errorf("drain nope#0: %v, want ErrUnknownService", err)
	}
	if err := h.sup.UndrainInstance(ctx, "web", 0); err != nil {
		t.Errorf("undrain of a slot not drained: %v, want nothing to do", err)
	}
}

// An instance that does not answer its readiness check stays out when
// undrained.
func TestUndrainWaitsForReadiness(t *testing.T) {
	cfg := healthConfig(t, 2, 0)
	cfg.Services[0].HealthCheckInterval = time.Hour // only the undrain's check
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	ctx := drainCtx(t)
	if err := h.sup.DrainInstance(ctx, "web", 1, false); err != nil {
		t.Fatal(err)
	}
	h.setHealth(t, 1, true)
	err := h.sup.UndrainInstance(ctx, "web", 1)
	if !errors.Is(err, api.ErrNotAnswering) || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "stays out of rotation") {
		t.Fatalf("undrain of an instance failing its check: %v, want ErrNotAnswering with the 500", err)
	}
	if got := h.inRotation(); !slices.Equal(got, []int{0}) {
		t.Fatalf("in rotation: %v, want [0]", got)
	}
	h.setHealth(t, 1, false)
	if err := h.sup.UndrainInstance(ctx, "web", 1); err != nil {
		t.Fatalf("undrain once it answers: %v", err)
	}
	if got := h.inRotation(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("in rotation: %v, want [0 1]", got)
	}
}

// A drained slot stays drained through a crash restart and a rollout, and
// through a handoff to the next supervisor (the state file).
func TestDrainedSlotStaysDrained(t *testing.T) {
	cfg := testConfig(t, 3, "normal")
	h, stateFile := keeping(t, cfg)
	ctx := drainCtx(t)
	if err := h.sup.DrainInstance(ctx, "web", 2, false); err != nil {
		t.Fatal(err)
	}
	old := h.instances()[2].Pid
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "web#2 restarted after its crash, drained", func() bool {
		in := h.instances()[2]
		return in.Pid != old && in.Pid != 0 && in.State == StateDrained
	})
	if got := h.inRotation(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("in rotation after web#2's restart: %v, want [0 1]", got)
	}

	watch := watchRotation(h)
	if _, err := h.sup.Restart(ctx, "web", "test"); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	if got := h.inRotation(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("in rotation after a rollout: %v, want [0 1]", got)
	}
	if n := watch(); n < 2 {
		t.Errorf("the rotation fell to %d during the rollout", n)
	}
	if got := h.states(); !slices.Equal(got, []State{StateReady, StateReady, StateDrained}) {
		t.Fatalf("states after a rollout: %v", got)
	}

	eventually(t, 2*time.Second, "the state file lists web#2 drained", func() bool {
		st, err := handoff.Read(stateFile)
		return err == nil && slices.Equal(st.Drained["web"], []int{2})
	})
	detach(t, h)
	next := startWith(t, cfg, stateFile)
	awaitReady(t, next, 10*time.Second)
	if got := next.inRotation(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("in rotation after the handoff: %v, want [0 1]", got)
	}
	if got := next.states(); !slices.Equal(got, []State{StateReady, StateReady, StateDrained}) {
		t.Fatalf("states after the handoff: %v", got)
	}
	if err := next.sup.UndrainInstance(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	if got := next.inRotation(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("in rotation after undrain: %v", got)
	}
	eventually(t, 2*time.Second, "the state file lists no drained slot", func() bool {
		st, err := handoff.Read(stateFile)
		return err == nil && len(st.Drained) == 0
	})
}

// A drained instance is not counted healthy: when the others fail their
// health checks they stay in rotation.
func TestDrainedIsNotTheHealthyOne(t *testing.T) {
	cfg := healthConfig(t, 2, 0)
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	if err := h.sup.DrainInstance(drainCtx(t), "web", 1, false); err != nil {
		t.Fatal(err)
	}
	h.setHealth(t, 0, true)
	eventually(t, 3*time.Second, "web#0 unhealthy", func() bool { return h.instances()[0].State == StateUnhealthy })
	time.Sleep(300 * time.Millisecond)
	if got := h.inRotation(); !slices.Equal(got, []int{0}) {
		t.Fatalf("in rotation: %v, want [0]: the only undrained one stays in, unhealthy", got)
	}
}
