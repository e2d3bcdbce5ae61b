package supervisor

import (
	"context"
	"fmt"
	"maps"
	"syscall"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/handoff"
)

// answer has n requests answered by the harness's instance of slot.
func (h *harness) answer(t *testing.T, slot, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("slot %d not in rotation within 5s", slot)
		}
		b := h.set.Pick(nil)
		if b == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b.Release(b.Slot == slot)
		if b.Slot == slot {
			n--
		}
	}
}

// crash kills the instance of slot and waits until another one is ready
// in its place.
func (h *harness) crash(t *testing.T, slot int) {
	t.Helper()
	pid := h.instances()[slot].Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the killed instance is replaced", func() bool {
		in := h.instances()[slot]
		return in.State == StateReady && in.Pid != pid
	})
}

// countsText is counts as text, for got/want messages.
func countsText(counts []SlotCounts) string {
	s := ""
	for _, c := range counts {
		s += fmt.Sprintf("%s#%d restarts %v served %d; ", c.Service, c.Slot, c.Restarts, c.Served)
	}
	return s
}

// wantCounts checks the supervisor's counts.
func wantCounts(t *testing.T, when string, got []SlotCounts, want ...SlotCounts) {
	t.Helper()
	if g, w := countsText(got), countsText(want); g != w {
		t.Errorf("%s: counts %s\nwant %s", when, g, w)
	}
}

// wantStatus checks the status of the harness's slot: its restarts, by
// reason and in all, and what it served.
func (h *harness) wantStatus(t *testing.T, when string, slot int, served uint64, reasons map[string]int) {
	t.Helper()
	total := 0
	for _, n := range reasons {
		total += n
	}
	var got *InstanceStatus
	for _, in := range h.instances() {
		if in.Slot == slot {
			got = &in
			break
		}
	}
	switch {
	case got == nil:
		t.Errorf("%s: no status of slot %d", when, slot)
	case got.Served != served || got.Restarts != total || !maps.Equal(got.RestartReasons, reasons):
		t.Errorf("%s: slot %d served %d, restarts %d %v; want %d, %d %v", when, slot, got.Served, got.Restarts, got.RestartReasons,
			served, total, reasons)
	}
}

// TestCountsOutliveAStopAndADroppedSlot: a slot's restarts and requests
// served stay counted while the service is stopped, and when a smaller
// instance_count drops the slot; starting the service again counts a
// "start".
func TestCountsOutliveAStopAndADroppedSlot(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	h.answer(t, 0, 2)
	h.crash(t, 0)
	h.answer(t, 1, 1)
	h.crash(t, 1)
	next := *cfg.Services[0]
	next.InstanceCount = 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.sup.Apply(ctx, &next, "test"); err != nil {
		t.Fatalf("Apply instance_count 1: %v", err)
	}
	h.wantStatus(t, "after the rollout", 0, 2, map[string]int{"crash": 1, "rollout": 1})
	dropped := SlotCounts{Service: "web", Slot: 1, Restarts: map[string]uint64{"crash": 1}, Served: 1}
	wantCounts(t, "after slot 1 was dropped", h.sup.Counts(),
		SlotCounts{Service: "web", Slot: 0, Restarts: map[string]uint64{"crash": 1, "rollout": 1}, Served: 2}, dropped)

	if err := h.sup.StopService(ctx, "web"); err != nil {
		t.Fatalf("StopService: %v", err)
	}
	wantCounts(t, "stopped", h.sup.Counts(),
		SlotCounts{Service: "web", Slot: 0, Restarts: map[string]uint64{"crash": 1, "rollout": 1}, Served: 2}, dropped)

	if err := h.sup.StartService(ctx, "web"); err != nil {
		t.Fatalf("StartService: %v", err)
	}
	h.answer(t, 0, 1)
	wantCounts(t, "started again", h.sup.Counts(),
		SlotCounts{Service: "web", Slot: 0, Restarts: map[string]uint64{"crash": 1, "rollout": 1, "start": 1}, Served: 3}, dropped)
	h.wantStatus(t, "started again", 0, 3, map[string]int{"crash": 1, "rollout": 1, "start": 1})
}

// counted runs a supervisor for a service of one instance that keeps a
// state file, has its instance answer 3 requests and crash once, calls
// between (a StopService, or nothing), and hands over. It returns the
// configuration, the state file and the counts handed over.
func counted(t *testing.T, between func(*harness)) (cfg *config.Config, stateFile string, counts []SlotCounts) {
	t.Helper()
	cfg = testConfig(t, 1, "normal")
	a, stateFile := keeping(t, cfg)
	a.answer(t, 0, 3)
	a.crash(t, 0)
	between(a)
	detach(t, a)
	counts = a.sup.Counts()
	wantCounts(t, "handed over", counts, SlotCounts{Service: "web", Slot: 0, Restarts: map[string]uint64{"crash": 1}, Served: 3})
	return cfg, stateFile, counts
}

// takeOver runs the supervisor an upgrade starts after counted's: it
// adopts from stateFile, and its counts go on from counts.
func takeOver(t *testing.T, cfg *config.Config, stateFile string, counts []SlotCounts) *harness {
	t.Helper()
	prior, err := handoff.Read(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, cfg, func(s *Supervisor) {
		s.Handoff(stateFile, prior, true)
		s.GoOnFrom(counts)
	})
}

// TestCountsGoOnAcrossAnUpgrade: the next supervisor shows the slot's
// restarts and requests served as they were (Status and Counts), adds its
// own, and counts an adopted instance as no restart.
func TestCountsGoOnAcrossAnUpgrade(t *testing.T) {
	cfg, stateFile, counts := counted(t, func(*harness) {})
	b := takeOver(t, cfg, stateFile, counts)
	awaitReady(t, b, 10*time.Second)
	b.wantStatus(t, "after the upgrade", 0, 3, map[string]int{"crash": 1})
	b.answer(t, 0, 1)
	b.crash(t, 0)
	b.wantStatus(t, "after a crash", 0, 4, map[string]int{"crash": 2})
	wantCounts(t, "after a crash", b.sup.Counts(), SlotCounts{Service: "web", Slot: 0, Restarts: map[string]uint64{"crash": 2}, Served: 4})
}

// TestCountsOfAStoppedServiceGoOnAcrossAnUpgrade: a service stopped
// through an upgrade keeps its counts in the next supervisor, and its
// start there counts a "start" (its slots had processes before).
func TestCountsOfAStoppedServiceGoOnAcrossAnUpgrade(t *testing.T) {
	cfg, stateFile, counts := counted(t, func(a *harness) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.sup.StopService(ctx, "web"); err != nil {
			t.Fatalf("StopService: %v", err)
		}
	})
	b := takeOver(t, cfg, stateFile, counts)
	if st := b.sup.Status()[0]; st.State != ServiceStopped {
		t.Fatalf("after the upgrade the service is %s, want stopped", st.State)
	}
	wantCounts(t, "stopped, after the upgrade", b.sup.Counts(), counts...)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.sup.StartService(ctx, "web"); err != nil {
		t.Fatalf("StartService: %v", err)
	}
	b.wantStatus(t, "started after the upgrade", 0, 3, map[string]int{"crash": 1, "start": 1})
	wantCounts(t, "started after the upgrade", b.sup.Counts(),
		SlotCounts{Service: "web", Slot: 0, Restarts: map[string]uint64{"crash": 1, "start": 1}, Served: 3})
}
