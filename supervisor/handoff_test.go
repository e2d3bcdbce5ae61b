package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/handoff"
	"smoothserve/upstream"
)

// startWith runs a second supervisor over cfg that takes over from the state
// file; it stops in the test's cleanup.
func startWith(t *testing.T, cfg *config.Config, stateFile string) *harness {
	t.Helper()
	prior, err := handoff.Read(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, prior) })
}

// handedOver runs a supervisor for cfg that keeps a state file, waits
// until its instances are ready, and hands them over (detach). It returns
// the state file and the instances by port.
func handedOver(t *testing.T, cfg *config.Config) (stateFile string, before map[int]int) {
	t.Helper()
	stateFile = filepath.Join(cfg.Dir, "state.json")
	a := start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, nil) })
	awaitReady(t, a, 5*time.Second)
	before = a.ready()
	detach(t, a)
	return stateFile, before
}

// detach hands the harness's instances over: its Run returns, the
// processes keep running.
func detach(t *testing.T, h *harness) {
	t.Helper()
	if err := h.sup.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	h.sup.Detach()
	if err := h.stop(t, 5*time.Second); err != nil {
		t.Fatalf("Run after Detach: %v", err)
	}
}

func TestInstancesAreAdoptedAcrossAHandoff(t *testing.T) {
	cfg := testConfig(t, 3, "normal")
	stateFile, before := handedOver(t, cfg)
	for _, pid := range before {
		if !alive(pid) {
			t.Fatalf("pid %d died when its supervisor detached", pid)
		}
	}

	// The next supervisor, on a fresh rotation, adopts them.
	b := startWith(t, cfg, stateFile)
	awaitReady(t, b, 5*time.Second)
	if got := b.ready(); len(got) != 3 || !maps.Equal(got, before) {
		t.Fatalf("after the handoff: %v, want the same instances %v", got, before)
	}
	if n := len(b.set.Backends()); n != 3 {
		t.Errorf("%d adopted instances in rotation, want 3", n)
	}
	for _, in := range b.instances() {
		if in.StartedAt.IsZero() || time.Since(in.StartedAt) > time.Minute {
			t.Errorf("adopted instance started_at %v, want its real start", in.StartedAt)
		}
	}

	// A crash of an adopted instance is noticed and replaced.
	var victim, port int
	for port, victim = range before {
		break
	}
	syscall.Kill(victim, syscall.SIGKILL)
	eventually(t, 5*time.Second, "the killed adopted instance is replaced", func() bool {
		p := b.ready()[port]
		return p != 0 && p != victim
	})

	// A rollout replaces adopted instances like any other.
	if _, err := restart(t, b); err != nil {
		t.Fatalf("Restart of adopted instances: %v", err)
	}
	for _, pid := range before {
		if alive(pid) {
			t.Errorf("adopted pid %d still runs after a rollout", pid)
		}
	}
}

func TestShutdownStopsAdoptedInstances(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	stateFile, before := handedOver(t, cfg)
	b := startWith(t, cfg, stateFile)
	awaitReady(t, b, 5*time.Second)
	if err := b.stop(t, 15*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, pid := range before {
		eventually(t, 2*time.Second, "adopted instance stopped", func() bool { return !alive(pid) })
	}
	st, err := handoff.Read(stateFile)
	if err != nil || len(st.Instances) != 0 {
		t.Errorf("state file after a full stop: %+v %v, want no instances", st, err)
	}
}

func TestVanishedInstanceIsStartedAgain(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	stateFile, before := handedOver(t, cfg)
	var gone int
	for _, gone = range before {
		break
	}
	syscall.Kill(gone, syscall.SIGKILL)
	eventually(t, 2*time.Second, "killed", func() bool { return !alive(gone) })
	b := startWith(t, cfg, stateFile)
	awaitReady(t, b, 5*time.Second)
	got := b.ready()
	adopted := 0
	for port, pid := range got {
		if before[port] == pid {
			adopted++
		}
		if pid == gone {
			t.Errorf("the vanished pid %d is listed as ready", gone)
		}
	}
	if len(got) != 2 || adopted != 1 {
		t.Errorf("after a handoff with one instance gone: %v (adopted %d), want 2 ready, 1 of them adopted", got, adopted)
	}
}

func TestFreezeHoldsEverythingUntilThaw(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	if err := h.sup.Freeze(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.sup.Restart(ctx, "web", "test"); !errors.Is(err, ErrFrozen) {
		t.Errorf("Restart while frozen: %v, want ErrFrozen", err)
	}
	if err := h.sup.StopService(ctx, "web"); !errors.Is(err, ErrFrozen) {
		t.Errorf("StopService while frozen: %v, want ErrFrozen", err)
	}
	var victim, port int
	for port, victim = range h.ready() {
		break
	}
	syscall.Kill(victim, syscall.SIGKILL)
	eventually(t, 2*time.Second, "the crash leaves rotation", func() bool { return len(h.set.Backends()) == 1 })
	time.Sleep(400 * time.Millisecond)
	if p := h.ready()[port]; p != 0 {
		t.Fatalf("a crashed instance was restarted (pid %d) while frozen", p)
	}
	h.sup.Thaw()
	awaitReady(t, h, 5*time.Second)
	if _, err := h.sup.Restart(ctx, "web", "test"); err != nil {
		t.Errorf("Restart after Thaw: %v", err)
	}
}

func TestLeftoversAndChangedServices(t *testing.T) {
	cfg := testConfig(t, 3, "normal")
	stateFile, before := handedOver(t, cfg)

	// The next configuration has two instances and other settings.
	next := *cfg
	svc := *cfg.Services[0]
	svc.InstanceCount = 2
	next.Services = []*config.Service{&svc}
	prior, _ := handoff.Read(stateFile)
	sets := map[string]*upstream.Set{"web": upstream.NewSet("web", svc.StartTimeout)}
	b := New(&next, sets, slog.New(slog.DiscardHandler))
	b.Handoff(stateFile, prior)
	if got := b.Changed(); len(got) != 1 || got[0] != "web" {
		t.Errorf("Changed() = %v, want [web]", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := b.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	third := before[cfg.Services[0].InstancePort(2, false)]
	if !alive(third) {
		t.Fatalf("slot 2's pid %d died before StopLeftovers", third)
	}
	b.StopLeftovers(wctx)
	if alive(third) {
		t.Errorf("slot 2's pid %d (no longer configured) still runs after StopLeftovers", third)
	}
	for slot := range 2 {
		if pid := before[svc.InstancePort(slot, false)]; !alive(pid) {
			t.Errorf("adopted slot %d pid %d was stopped", slot, pid)
		}
	}
}
