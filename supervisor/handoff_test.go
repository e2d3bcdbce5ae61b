package supervisor

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/handoff"
)

// startWith runs a second supervisor over cfg that takes over from the state
// file; it stops in the test's cleanup.
func startWith(t *testing.T, cfg *config.Config, stateFile string) *harness {
	t.Helper()
	prior, err := handoff.Read(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, prior, false) })
}

// keeping runs a supervisor for cfg that keeps the state file
// cfg.Dir/state.json, and waits until its instances are ready.
func keeping(t *testing.T, cfg *config.Config) (h *harness, stateFile string) {
	t.Helper()
	stateFile = filepath.Join(cfg.Dir, "state.json")
	h = start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, nil, false) })
	awaitReady(t, h, 10*time.Second)
	return h, stateFile
}

// handedOver runs a supervisor for cfg that keeps a state file, waits
// until its instances are ready, and hands them over (detach). It returns
// the state file and the instances by port.
func handedOver(t *testing.T, cfg *config.Config) (stateFile string, before map[int]int) {
	t.Helper()
	a, stateFile := keeping(t, cfg)
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
	// The next configuration has two instances and another environment.
	old, svc, before, b := handOverTo(t, 3, func(svc *config.Service) {
		svc.InstanceCount = 2
		svc.Env["NEXT"] = "1"
	})
	if got := b.sup.Changed(); len(got) != 1 || got[0] != "web" {
		t.Errorf("Changed() = %v, want [web]", got)
	}
	third := before[old.InstancePort(2, false)]
	if !alive(third) {
		t.Fatalf("slot 2's pid %d died before StopLeftovers", third)
	}
	stopLeftovers(b)
	if alive(third) {
		t.Errorf("slot 2's pid %d (no longer configured) still runs after StopLeftovers", third)
	}
	for slot := range 2 {
		if pid := before[svc.InstancePort(slot, false)]; !alive(pid) {
			t.Errorf("adopted slot %d pid %d was stopped", slot, pid)
		}
	}
}

// A new instance_count, health check or timeout needs no new process: the
// adopted instances are not listed for a roll.
func TestChangedIgnoresWhatNeedsNoNewProcess(t *testing.T) {
	old, svc, before, b := handOverTo(t, 2, func(svc *config.Service) {
		svc.InstanceCount = 1
		svc.HealthCheck = "/"
		svc.StopTimeout = 7 * time.Second
		svc.RestartStrategy = config.StrategyInPlace
	})
	if got := b.sup.Changed(); len(got) != 0 {
		t.Errorf("Changed() = %v, want none", got)
	}
	if pid := before[svc.InstancePort(0, false)]; b.ready()[svc.InstancePort(0, false)] != pid {
		t.Errorf("slot 0 runs %v, want adopted pid %d", b.ready(), pid)
	}
	stopLeftovers(b)
	if pid := before[old.InstancePort(1, false)]; alive(pid) {
		t.Errorf("slot 1's pid %d (no longer configured) still runs after StopLeftovers", pid)
	}
}

// A service whose instances were all started afresh (none adopted: here
// they moved to other ports) runs its settings already: not listed.
func TestChangedIgnoresServicesStartedAfresh(t *testing.T) {
	_, _, before, b := handOverTo(t, 1, func(svc *config.Service) {
		svc.StartInstancePort = freePortBase(t, 2)
		svc.Env["NEXT"] = "1"
	})
	if got := b.sup.Changed(); len(got) != 0 {
		t.Errorf("Changed() = %v, want none: no instance was adopted", got)
	}
	stopLeftovers(b)
	for _, pid := range before {
		if alive(pid) {
			t.Errorf("pid %d on the old port still runs after StopLeftovers", pid)
		}
	}
}

// handOverTo hands n instances of service "web" over (handedOver) to a
// supervisor whose configuration of it edit changed, and waits until that
// one is ready. It returns the old settings and the new, the handed-over
// instances by port, and the new supervisor.
func handOverTo(t *testing.T, n int, edit func(*config.Service)) (old, svc *config.Service, before map[int]int, b *harness) {
	t.Helper()
	cfg := testConfig(t, n, "normal")
	stateFile, before := handedOver(t, cfg)
	old = cfg.Services[0]
	next := *cfg
	svc = new(*old)
	svc.Env = maps.Clone(old.Env)
	edit(svc)
	next.Services = []*config.Service{svc}
	b = startWith(t, &next, stateFile)
	awaitReady(t, b, 5*time.Second)
	return old, svc, before, b
}

func stopLeftovers(h *harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.sup.StopLeftovers(ctx)
}

// A rollout onto new settings that failed leaves instances of the old
// ones: the state file records each instance's settings, and after the
// handoff the service is listed although the configuration did not change
// since.
func TestChangedAfterAFailedRollout(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	a, stateFile := keeping(t, cfg)
	before := a.ready()
	next := *cfg.Services[0]
	next.Env = maps.Clone(next.Env)
	next.Env["CHILD_MODE"] = "exit" // every new instance exits at once
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.sup.Apply(ctx, &next, "test"); !errors.Is(err, ErrRolloutFailed) {
		t.Fatalf("Apply onto instances that exit: %v, want ErrRolloutFailed", err)
	}
	if got := a.ready(); !maps.Equal(got, before) {
		t.Fatalf("after the failed rollout: %v, want the old instances %v", got, before)
	}
	detach(t, a)

	nextCfg := *cfg
	nextCfg.Services = []*config.Service{&next}
	b := startWith(t, &nextCfg, stateFile)
	awaitReady(t, b, 5*time.Second)
	if got := b.ready(); !maps.Equal(got, before) {
		t.Fatalf("after the handoff: %v, want the old instances adopted %v", got, before)
	}
	if got := b.sup.Changed(); len(got) != 1 || got[0] != "web" {
		t.Errorf("Changed() = %v, want [web]: its instances run the settings from before the failed rollout", got)
	}
}

// After a surge rollout an instance runs on its slot's second port, which
// a larger instance_count gives to another slot as its first: that slot
// starts beside it, not into a port in use, and the old instance is a
// leftover.
func TestNewSlotStartsBesideAnInstanceLeftOnItsPort(t *testing.T) {
	cfg := testConfig(t, 2, "normal") // 4 ports reserved
	svc := cfg.Services[0]
	svc.InstanceCount = 1
	a, stateFile := keeping(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.sup.Restart(ctx, "web", "test"); err != nil {
		t.Fatal(err)
	}
	old := a.ready()[svc.StartInstancePort+1]
	if old == 0 {
		t.Fatalf("after a surge rollout: %v, want the instance on :%d", a.ready(), svc.StartInstancePort+1)
	}
	detach(t, a)

	next := *cfg
	grown := *svc
	grown.InstanceCount = 2
	next.Services = []*config.Service{&grown}
	b := startWith(t, &next, stateFile)
	awaitReady(t, b, 5*time.Second)
	got := b.ready()
	if got[grown.InstancePort(0, false)] == 0 || got[grown.InstancePort(1, true)] == 0 {
		t.Errorf("after the handoff: %v, want slot 0 on :%d and slot 1 beside the old instance, on :%d",
			got, grown.InstancePort(0, false), grown.InstancePort(1, true))
	}
	stopLeftovers(b)
	if alive(old) {
		t.Errorf("the old instance pid %d still runs after StopLeftovers", old)
	}
}

// The state file lists an instance with its identity from its start, not
// only once it is ready: a crash while it starts must not orphan it, and
// the next smoothserve verifies it by that identity.
func TestStateFileIdentifiesAStartingInstance(t *testing.T) {
	cfg := testConfig(t, 1, "nolisten")
	cfg.Services[0].StartTimeout = 30 * time.Second
	stateFile := filepath.Join(cfg.Dir, "state.json")
	h := start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, nil, false) })
	var listed handoff.Instance
	eventually(t, 5*time.Second, "the state file lists web#0 starting", func() bool {
		st, err := handoff.Read(stateFile)
		if err != nil || len(st.Instances) != 1 {
			return false
		}
		listed = st.Instances[0]
		return listed.State == StateStarting.String()
	})
	if pid := h.instances()[0].Pid; listed.Pid != pid {
		t.Fatalf("state file lists pid %d, the instance is pid %d", listed.Pid, pid)
	}
	if _, err := handoff.Verify(listed); err != nil || listed.StartTime == 0 || listed.Exe == "" {
		t.Errorf("the starting instance is listed as %+v (verify: %v), want its start time and executable", listed, err)
	}
}

// An instance that exits after its hand-over is the next process's to stop
// and to see go: the process handed over from (still serving its last TLS
// connections) neither kills what is left of its group, a worker
// finishing its requests, nor logs the exit as a loss.
func TestAHandedOverInstancesExitIsLeftToTheNextProcess(t *testing.T) {
	cfg := testConfig(t, 1, "normal")
	a, _ := keeping(t, cfg)
	var leader int
	for _, pid := range a.ready() {
		leader = pid
	}
	worker := exec.Command("sleep", "30")
	worker.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: leader} // in the instance's group
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	workerDone := make(chan struct{})
	go func() { worker.Wait(); close(workerDone) }()
	t.Cleanup(func() { worker.Process.Kill(); <-workerDone })
	// Handed over, and still running (serving its last connections).
	if err := a.sup.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	a.sup.Detach()

	if err := syscall.Kill(leader, syscall.SIGTERM); err != nil { // the next process stops it
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the instance's leader exits", func() bool { return !alive(leader) })
	select {
	case <-workerDone:
		t.Fatalf("the worker left in the instance's group was killed by the process handed over from")
	case <-time.After(time.Second):
	}
	logged, _ := os.ReadFile(filepath.Join(cfg.LogDir, cfg.Services[0].Name+".log"))
	if strings.Contains(string(logged), "exited") {
		t.Errorf("the process handed over from logged the exit:\n%s", logged)
	}
}
