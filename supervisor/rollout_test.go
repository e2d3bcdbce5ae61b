package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/config"
)

// ready maps the port of each ready instance of the harness's service
// to its pid.
func (h *harness) ready() map[int]int {
	m := map[int]int{}
	for _, in := range h.instances() {
		if in.State == StateReady {
			m[in.Port] = in.Pid
		}
	}
	return m
}

func restart(t *testing.T, h *harness) (*Rollout, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := h.sup.Restart(ctx, "web", "test")
	if len(rs) != 1 {
		t.Fatalf("Restart returned %d rollouts (err %v), want 1", len(rs), err)
	}
	return rs[0], err
}

// watchRotation records the smallest rotation seen until stop is called.
func watchRotation(h *harness) (stop func() int) {
	var min atomic.Int64
	min.Store(1 << 30)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if n := int64(len(h.set.Backends())); n < min.Load() {
				min.Store(n)
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
	return func() int { close(done); wg.Wait(); return int(min.Load()) }
}

func TestSurgeRolloutReplacesEveryInstance(t *testing.T) {
	cfg := testConfig(t, 3, "normal")
	svc := cfg.Services[0]
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)

	for round, alt := range []bool{true, false, true} {
		before := h.ready()
		stop := watchRotation(h)
		r, err := restart(t, h)
		minRotation := stop()
		if err != nil || r.Outcome != RolloutOK {
			t.Fatalf("round %d: Restart: %v (%+v)", round, err, r)
		}
		if minRotation < 3 {
			t.Errorf("round %d: rotation fell to %d instances during a surge rollout, want never below 3", round, minRotation)
		}
		if len(r.Instances) != 3 {
			t.Fatalf("round %d: %d instances rolled, want 3", round, len(r.Instances))
		}
		for i, ri := range r.Instances {
			wantPort := svc.InstancePort(i, alt)
			if ri.Slot != i || ri.Port != wantPort || ri.NewPid == ri.OldPid || ri.OldPid != before[svc.InstancePort(i, !alt)] {
				t.Errorf("round %d: rolled %+v, want slot %d from pid %d to a new pid on port %d", round, ri, i, before[svc.InstancePort(i, !alt)], wantPort)
			}
			if alive(ri.OldPid) {
				t.Errorf("round %d: old pid %d still running", round, ri.OldPid)
			}
		}
		after := h.ready()
		for i := range 3 {
			if after[svc.InstancePort(i, alt)] == 0 {
				t.Errorf("round %d: no ready instance on port %d: %v", round, svc.InstancePort(i, alt), after)
			}
		}
		if n := len(h.set.Backends()); n != 3 {
			t.Errorf("round %d: %d backends in rotation, want 3", round, n)
		}
		if lr := h.sup.Status()[0].LastRollout; lr == nil || lr.Outcome != RolloutOK || lr.Trigger != "test" {
			t.Errorf("round %d: status's last rollout = %+v", round, lr)
		}
	}
}

func TestInPlaceRollout(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	svc := cfg.Services[0]
	svc.RestartStrategy = config.StrategyInPlace
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	before := h.ready()
	r, err := restart(t, h)
	if err != nil {
		t.Fatalf("Restart: %v", err)
	}
	for i, ri := range r.Instances {
		port := svc.InstancePort(i, false)
		if ri.Port != port || ri.OldPid != before[port] || ri.NewPid == ri.OldPid || alive(ri.OldPid) {
			t.Errorf("rolled %+v, want port %d, old pid %d (gone), a new pid", ri, port, before[port])
		}
	}
}

func TestFailedReplacementStopsTheRollout(t *testing.T) {
	for _, strategy := range []string{config.StrategySurge, config.StrategyInPlace} {
		t.Run(strategy, func(t *testing.T) {
			modeFile := filepath.Join(t.TempDir(), "mode")
			cfg := testConfig(t, 3, "normal", "CHILD_MODE_FILE="+modeFile, "CHILD_PRINT=boom-for-the-log")
			cfg.Services[0].RestartStrategy = strategy
			cfg.Services[0].StartTimeout = 2 * time.Second
			h := start(t, cfg)
			awaitReady(t, h, 5*time.Second)
			before := h.ready()
			if err := os.WriteFile(modeFile, []byte("exit"), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := restart(t, h)
			if !errors.Is(err, ErrRolloutFailed) || r.Outcome != RolloutFailed {
				t.Fatalf("Restart with a failing binary: err %v, outcome %q; want ErrRolloutFailed", err, r.Outcome)
			}
			if len(r.Instances) != 0 || r.Error == "" || !slices.ContainsFunc(r.LogTail, func(l string) bool { return len(l) > 0 }) {
				t.Errorf("failed rollout report: %+v", r)
			}
			// The instances not replaced keep serving.
			kept := 0
			for port, pid := range before {
				if alive(pid) && h.ready()[port] == pid {
					kept++
				}
			}
			want := 3
			if strategy == config.StrategyInPlace {
				want = 2 // slot 0 was stopped before its replacement failed
			}
			if kept != want {
				t.Errorf("%d of the old instances still serve, want %d", kept, want)
			}
			// Repaired: the next restart works.
			os.Remove(modeFile)
			if _, err := restart(t, h); err != nil {
				t.Fatalf("Restart after the repair: %v", err)
			}
		})
	}
}

func TestRestartDuringARolloutJoinsIt(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	cfg.Services[0].DelayRunningTime = 300 * time.Millisecond
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	var wg sync.WaitGroup
	got := make([]*Rollout, 2)
	for i := range got {
		wg.Go(func() {
			r, err := restart(t, h)
			if err != nil {
				t.Errorf("Restart %d: %v", i, err)
			}
			got[i] = r
		})
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if got[0] == nil || got[1] == nil || !got[0].StartedAt.Equal(got[1].StartedAt) {
		t.Fatalf("two restarts asked together made two rollouts: %+v / %+v", got[0], got[1])
	}
}

func TestStopAndStartService(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	before := h.ready()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.sup.StopService(ctx, "web"); err != nil {
		t.Fatalf("StopService: %v", err)
	}
	if !h.set.Stopped() || len(h.set.Backends()) != 0 {
		t.Errorf("after StopService: set stopped=%v with %d backends", h.set.Stopped(), len(h.set.Backends()))
	}
	for _, pid := range before {
		if alive(pid) {
			t.Errorf("pid %d still running after StopService", pid)
		}
	}
	if st := h.sup.Status()[0]; st.State != ServiceStopped || len(st.Instances) != 0 {
		t.Errorf("status after StopService: %+v", st)
	}
	if _, err := h.sup.Restart(ctx, "web", "test"); err == nil {
		t.Error("Restart of a stopped service succeeded")
	}
	if err := h.sup.StartService(ctx, "web"); err != nil {
		t.Fatalf("StartService: %v", err)
	}
	if h.set.Stopped() || len(h.set.Backends()) != 2 || len(h.ready()) != 2 {
		t.Errorf("after StartService: stopped=%v backends=%d ready=%v", h.set.Stopped(), len(h.set.Backends()), h.ready())
	}
	if _, err := h.sup.Restart(ctx, "nope", "test"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("Restart of an unknown service: %v, want ErrUnknownService", err)
	}
}

func TestApplyNewSettings(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct {
		count int
		mark  string
	}{{3, "grown"}, {1, "shrunk"}, {2, "again"}} {
		next := marked(h, tc.count, tc.mark)
		next.MaxBodySize = int64(tc.count) << 20
		old := h.ready()
		r, err := h.sup.Apply(ctx, &next, "services/web.yaml")
		if err != nil {
			t.Fatalf("Apply instance_count %d: %v", tc.count, err)
		}
		if len(r.Instances) != tc.count {
			t.Errorf("Apply %d: %d instances rolled, want %d", tc.count, len(r.Instances), tc.count)
		}
		ready := h.ready()
		if len(ready) != tc.count || len(h.set.Backends()) != tc.count {
			t.Errorf("after Apply %d: ready %v, %d in rotation", tc.count, ready, len(h.set.Backends()))
		}
		expectMark(t, ready, tc.mark)
		for _, pid := range old {
			if alive(pid) {
				t.Errorf("after Apply %d: old pid %d still running", tc.count, pid)
			}
		}
		if got := len(h.instances()); got != tc.count {
			t.Errorf("after Apply %d: status lists %d instances", tc.count, got)
		}
		if got := h.set.MaxBodySize(); got != next.MaxBodySize {
			t.Errorf("after Apply %d: the set's MaxBodySize is %d, want %d", tc.count, got, next.MaxBodySize)
		}
	}
}

// Shrinking instance_count from 4 to 2 moves each slot's pair of ports
// (start+i, start+count+i): slot 0's other port is now slot 2's. The slots
// dropped go first, so the surge replacement finds its port free.
func TestApplyShrinkOntoThePortsOfDroppedSlots(t *testing.T) {
	cfg := testConfig(t, 4, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := marked(h, 2, "shrunk")
	if _, err := h.sup.Apply(ctx, &next, "services/web.yaml"); err != nil {
		t.Fatalf("Apply instance_count 4 → 2: %v", err)
	}
	if ready := h.ready(); len(ready) != 2 || len(h.set.Backends()) != 2 {
		t.Errorf("after Apply: ready %v, %d in rotation", ready, len(h.set.Backends()))
	}
}

// New settings for a service the operator stopped are taken without
// starting it; its start then runs them (before, a reload said "stopped:
// start it instead", and the start ran the old settings).
func TestApplyToAStoppedServiceRunsAtItsStart(t *testing.T) {
	cfg := testConfig(t, 3, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.sup.StopService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	next := marked(h, 2, "while-stopped")
	if r, err := h.sup.Apply(ctx, &next, "services/web.yaml"); err != nil || r.Outcome != RolloutKept {
		t.Fatalf("Apply to the stopped service: %+v, %v; want outcome %q", r, err, RolloutKept)
	}
	if ready := h.ready(); len(ready) != 0 {
		t.Fatalf("Apply started the stopped service: %v", ready)
	}
	if err := h.sup.StartService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	ready := h.ready()
	if len(ready) != 2 {
		t.Errorf("after the start: ready %v, want the new instance_count 2", ready)
	}
	expectMark(t, ready, "while-stopped")
}

// marked is the harness's service with count instances and the mark in
// its environment (DEPLOY_MARK), for expectMark to find.
func marked(h *harness, count int, mark string) config.Service {
	next := *h.svc
	next.InstanceCount = count
	next.Env = map[string]string{"SUPERVISOR_TEST_CHILD": "1", "CHILD_MODE": "normal", "DEPLOY_MARK": mark}
	return next
}

// expectMark checks that each instance on the ports of ready runs with
// the mark in its environment (marked).
func expectMark(t *testing.T, ready map[int]int, mark string) {
	t.Helper()
	for port := range ready {
		if env := get(t, fmt.Sprintf("127.0.0.1:%d", port), "/env"); !strings.Contains(env, "DEPLOY_MARK="+mark) {
			t.Errorf("instance on :%d runs without the new settings (DEPLOY_MARK=%s)", port, mark)
		}
	}
}
