package supervisor

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/upstream"
)

// healthConfig is testConfig with health checks after start every 100 ms,
// unhealthy after 2 failures, replaced after restartAfter (0: never).
func healthConfig(t *testing.T, n int, restartAfter time.Duration) *config.Config {
	t.Helper()
	cfg := testConfig(t, n, "normal")
	svc := cfg.Services[0]
	svc.HealthCheck = "/healthz"
	svc.HealthCheckInterval = 100 * time.Millisecond
	svc.HealthCheckFails = 2
	svc.UnhealthyRestartAfter = restartAfter
	return cfg
}

// setHealth makes the instance of slot answer its health check with 500
// (sick) or 200.
func (h *harness) setHealth(t *testing.T, slot int, sick bool) {
	t.Helper()
	path := "/well"
	if sick {
		path = "/sick"
	}
	get(t, fmt.Sprintf("127.0.0.1:%d", h.instances()[slot].Port), path)
}

// inRotation lists the slots whose instances are in rotation.
func (h *harness) inRotation() []int {
	var slots []int
	for _, b := range h.set.Backends() {
		slots = append(slots, b.Slot)
	}
	slices.Sort(slots)
	return slots
}

// states is each slot's state, in order.
func (h *harness) states() []State {
	var out []State
	for _, in := range h.instances() {
		out = append(out, in.State)
	}
	return out
}

// serveOne sends one request to the instance of slot through the rotation,
// and reports whether it was picked at all within tries.
func (h *harness) serveOne(slot int, tries int) bool {
	for range tries {
		b := h.set.Pick(nil)
		if b == nil {
			return false
		}
		b.Release(b.Slot == slot)
		if b.Slot == slot {
			return true
		}
	}
	return false
}

// An instance whose health check fails health_check_fails times in a row
// leaves rotation, shown unhealthy, and comes back after one pass; its
// process is not touched, and its served count carries over.
func TestUnhealthyLeavesRotationAndComesBack(t *testing.T) {
	cfg := healthConfig(t, 3, 0)
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	pid := h.instances()[1].Pid
	if !h.serveOne(1, 100) {
		t.Fatal("slot 1 was never picked while healthy")
	}

	h.setHealth(t, 1, true)
	eventually(t, 3*time.Second, "slot 1 unhealthy and out of rotation", func() bool {
		return h.instances()[1].State == StateUnhealthy && slices.Equal(h.inRotation(), []int{0, 2})
	})
	if h.serveOne(1, 50) {
		t.Error("an unhealthy instance was picked")
	}
	if got := h.sup.Status()[0].State; got != ServiceRunning {
		t.Errorf("service state %s, want running", got)
	}

	h.setHealth(t, 1, false)
	eventually(t, 3*time.Second, "slot 1 ready and back in rotation", func() bool {
		return h.instances()[1].State == StateReady && slices.Equal(h.inRotation(), []int{0, 1, 2})
	})
	if !h.serveOne(1, 100) {
		t.Fatal("slot 1 was never picked once healthy again")
	}
	in := h.instances()[1]
	if in.Pid != pid || in.Restarts != 0 || in.Served != 2 {
		t.Errorf("slot 1 after coming back: %+v, want pid %d, no restart, served 2", in, pid)
	}
	log := readLog(t, cfg)
	for _, want := range []string{
		fmt.Sprintf("web#1 pid %d is unhealthy: 2 health checks in a row failed, the last: health check GET /healthz: 500 Internal Server Error", pid),
		fmt.Sprintf("web#1 pid %d out of rotation until its health check passes", pid),
		fmt.Sprintf("web#1 pid %d is healthy again", pid),
		fmt.Sprintf("web#1 pid %d back in rotation", pid),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// When every instance is unhealthy, they all stay in rotation; once one
// passes, the others leave it.
func TestAllUnhealthyStayInRotation(t *testing.T) {
	cfg := healthConfig(t, 2, 0)
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	watch := watchRotation(h)

	h.setHealth(t, 0, true)
	eventually(t, 3*time.Second, "slot 0 out of rotation", func() bool { return slices.Equal(h.inRotation(), []int{1}) })
	h.setHealth(t, 1, true)
	eventually(t, 3*time.Second, "both unhealthy, both in rotation", func() bool {
		return slices.Equal(h.states(), []State{StateUnhealthy, StateUnhealthy}) && slices.Equal(h.inRotation(), []int{0, 1})
	})
	if !strings.Contains(readLog(t, cfg), "every ready instance of web fails its health check: all 2 stay in rotation") {
		t.Errorf("the log does not say that every instance fails:\n%s", readLog(t, cfg))
	}
	h.setHealth(t, 1, false)
	eventually(t, 3*time.Second, "slot 1 healthy, slot 0 out again", func() bool {
		return slices.Equal(h.states(), []State{StateUnhealthy, StateReady}) && slices.Equal(h.inRotation(), []int{1})
	})
	if n := watch(); n < 1 {
		t.Errorf("the rotation was empty at some point (smallest: %d)", n)
	}
	// A crash of the only healthy one puts the unhealthy one back.
	if err := syscall.Kill(h.instances()[1].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "slot 0 back in rotation after slot 1 crashed", func() bool {
		return slices.Contains(h.inRotation(), 0)
	})
}

// One unhealthy for unhealthy_restart_after is drained, stopped and
// started again, as a crashed one is.
func TestUnhealthyIsReplaced(t *testing.T) {
	cfg := healthConfig(t, 2, 300*time.Millisecond)
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	old := h.instances()[0]

	h.setHealth(t, 0, true)
	eventually(t, 5*time.Second, "slot 0 replaced and ready", func() bool {
		in := h.instances()[0]
		return in.Pid != old.Pid && in.Pid != 0 && in.State == StateReady
	})
	in := h.instances()[0]
	if in.Restarts != 1 || in.Port != old.Port || in.Error != "" {
		t.Errorf("slot 0 after its replacement: %+v, want restarted once on :%d", in, old.Port)
	}
	if alive(old.Pid) {
		t.Errorf("the unhealthy pid %d still runs", old.Pid)
	}
	eventually(t, time.Second, "both in rotation", func() bool { return slices.Equal(h.inRotation(), []int{0, 1}) })
	want := fmt.Sprintf("web#0 pid %d unhealthy for 300ms: health check GET /healthz: 500 Internal Server Error: replacing it", old.Pid)
	if log := readLog(t, cfg); !strings.Contains(log, want) || !strings.Contains(log, "web#0: starting again in") {
		t.Errorf("log lacks %q and the restart:\n%s", want, log)
	}
}

// When every instance is unhealthy past unhealthy_restart_after, they are
// replaced one at a time, and the rotation is never empty.
func TestEveryUnhealthyReplacedOneAtATime(t *testing.T) {
	cfg := healthConfig(t, 2, 300*time.Millisecond)
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	before := []int{h.instances()[0].Pid, h.instances()[1].Pid}
	watch := watchRotation(h)
	h.setHealth(t, 0, true)
	h.setHealth(t, 1, true)
	eventually(t, 10*time.Second, "both replaced and ready", func() bool {
		ins := h.instances()
		return len(ins) == 2 && ins[0].State == StateReady && ins[1].State == StateReady &&
			!slices.Contains(before, ins[0].Pid) && !slices.Contains(before, ins[1].Pid)
	})
	if n := watch(); n < 1 {
		t.Errorf("the rotation was empty at some point (smallest: %d)", n)
	}
}

// An upgrade's Freeze pauses the checks; Thaw resumes them.
func TestChecksPauseWhileFrozen(t *testing.T) {
	cfg := healthConfig(t, 2, 200*time.Millisecond)
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	if err := h.sup.Freeze(); err != nil {
		t.Fatal(err)
	}
	pid := h.instances()[0].Pid
	h.setHealth(t, 0, true)
	time.Sleep(600 * time.Millisecond) // six intervals
	if got := h.instances()[0]; got.State != StateReady || got.Pid != pid || !slices.Equal(h.inRotation(), []int{0, 1}) {
		t.Fatalf("frozen, a failing instance changed: %+v, rotation %v", got, h.inRotation())
	}
	h.sup.Thaw()
	eventually(t, 3*time.Second, "slot 0 unhealthy after Thaw", func() bool {
		return h.instances()[0].State == StateUnhealthy || h.instances()[0].Pid != pid
	})
}

// A rollout replaces an unhealthy instance like any other, and its checks
// end with it.
func TestRolloutReplacesUnhealthy(t *testing.T) {
	cfg := healthConfig(t, 2, 0)
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	h.setHealth(t, 1, true)
	eventually(t, 3*time.Second, "slot 1 unhealthy", func() bool { return h.instances()[1].State == StateUnhealthy })
	if _, err := restart(t, h); err != nil {
		t.Fatal(err)
	}
	if got := h.states(); !slices.Equal(got, []State{StateReady, StateReady}) {
		t.Errorf("after the rollout: %v, want both ready", got)
	}
	eventually(t, time.Second, "both in rotation", func() bool { return slices.Equal(h.inRotation(), []int{0, 1}) })
}

// rotation's bookkeeping: out and back in, with a request in flight
// across, counts every request once and hands the drain every backend.
func TestRotationOutAndBack(t *testing.T) {
	set := upstream.NewSet("web", 0)
	r := &rotation{set: set, name: "web", slot: 0, addr: "127.0.0.1:1"}
	if r.setOut(true) {
		t.Error("setOut before join changed something")
	}
	r.join()
	first := set.Pick(nil)
	if first == nil || !r.setOut(true) || r.setOut(true) {
		t.Fatal("setOut(true) after join: want one change")
	}
	if len(set.Backends()) != 0 || !first.Draining() || !r.isOut() {
		t.Fatal("out of rotation: the backend is still picked")
	}
	if !r.setOut(false) || len(set.Backends()) != 1 || set.Backends()[0] == first {
		t.Fatal("back in rotation: want a new backend")
	}
	second := set.Pick(nil)
	if r.inflight() != 2 {
		t.Errorf("inflight %d, want 2 (one per backend)", r.inflight())
	}
	first.Release(true)
	r.setOut(true)
	r.setOut(false) // forgets first, idle, keeping its count; keeps second, busy
	if got := r.served(); got != 1 {
		t.Errorf("served %d, want 1", got)
	}
	third := set.Pick(nil)
	bs := r.end()
	if len(bs) != 2 || bs[0] != second || bs[1] != third || len(set.Backends()) != 0 || !third.Draining() {
		t.Errorf("end returned %d backends, rotation %d; want the one with a request in flight and the last", len(bs), len(set.Backends()))
	}
	second.Release(true)
	third.Release(true)
	if got := r.served(); got != 3 {
		t.Errorf("served %d, want 3", got)
	}
	if r.setOut(true) || r.setOut(false) {
		t.Error("setOut after end changed something")
	}
}
