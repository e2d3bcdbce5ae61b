package supervisor

import (
	"fmt"
	"maps"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"smoothserve/handoff"
)

// sickAtHandover hands over n instances whose health check answers 500 from
// after the Freeze on (its checks are off by then): a readiness check of
// them fails. It returns the state file and the instances by port.
func sickAtHandover(t *testing.T, n int) (cfgFile string, before map[int]int, h func(handedOver bool) *harness) {
	t.Helper()
	cfg := testConfig(t, n, "normal")
	cfg.Services[0].HealthCheck = "/healthz"
	cfg.Services[0].StartTimeout = 3 * time.Second
	a, stateFile := keeping(t, cfg)
	before = a.ready()
	if err := a.sup.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	for port := range before {
		get(t, addrOf(port), "/sick")
	}
	a.sup.Detach()
	if err := a.stop(t, 5*time.Second); err != nil {
		t.Fatalf("Run after Detach: %v", err)
	}
	return stateFile, before, func(handedOver bool) *harness {
		prior, err := handoff.Read(stateFile)
		if err != nil {
			t.Fatal(err)
		}
		return start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, prior, handedOver) })
	}
}

func addrOf(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// An upgrade's new process puts the instances the old one had in rotation
// into rotation at once, not asking them again; after a crash (not handed
// over) each answers its readiness check first.
func TestHandedOverReadyInstancesAreNotAskedAgain(t *testing.T) {
	t.Run("handed over", func(t *testing.T) {
		_, before, next := sickAtHandover(t, 2)
		b := next(true)
		eventually(t, time.Second, "the adopted instances in rotation", func() bool { return maps.Equal(b.ready(), before) })
		if n := len(b.set.Backends()); n != 2 {
			t.Errorf("%d in rotation, want 2", n)
		}
	})
	t.Run("after a crash", func(t *testing.T) {
		_, before, next := sickAtHandover(t, 2)
		noneUnchecked(t, next(false), before)
	})
}

// noneUnchecked fails if, a second after b started, one of the sick
// instances before is in b's rotation: it went in without answering its
// readiness check.
func noneUnchecked(t *testing.T, b *harness, before map[int]int) {
	t.Helper()
	time.Sleep(time.Second)
	for port, pid := range b.ready() {
		if before[port] == pid {
			t.Errorf("pid %d in rotation without answering its readiness check", pid)
		}
	}
}

// Only what the file says was ready is trusted, and only from a writer
// that keeps the states exact at a handover.
func TestHandoverTrustsOnlyExactReadyStates(t *testing.T) {
	t.Run("starting", func(t *testing.T) {
		stateFile, before, next := sickAtHandover(t, 2)
		st := readState(t, stateFile)
		st.Instances[0].State = StateStarting.String()
		writeState(t, stateFile, st)
		b := next(true)
		untrusted := st.Instances[0].Port
		eventually(t, time.Second, "the other instance in rotation", func() bool { return len(b.ready()) == 1 })
		if pid := b.ready()[untrusted]; pid == before[untrusted] {
			t.Errorf("pid %d recorded starting went into rotation unchecked", pid)
		}
	})
	t.Run("older file", func(t *testing.T) {
		stateFile, before, next := sickAtHandover(t, 2)
		st := readState(t, stateFile)
		st.StatesExact = false
		writeState(t, stateFile, st)
		noneUnchecked(t, next(true), before)
	})
}

// The state file is written when what it says changes: a process that
// adopts everything as it was writes none (and none without the adopted
// instances while it adopts them); Freeze writes the states as they are.
func TestStateFileWrittenOnlyWhenItChanges(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	a, stateFile := keeping(t, cfg)
	before := a.ready()
	if err := a.sup.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	st := readState(t, stateFile)
	if len(st.Instances) != 2 || !st.StatesExact {
		t.Fatalf("state file at Freeze: %+v, want 2 instances, states exact", st)
	}
	for _, in := range st.Instances {
		if in.State != StateReady.String() {
			t.Errorf("%s recorded %q at Freeze, want %q", in, in.State, StateReady)
		}
	}
	a.sup.Detach()
	if err := a.stop(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	ino := fileID(t, stateFile)
	b := start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, st, true) })
	awaitReady(t, b, 5*time.Second)
	if !maps.Equal(b.ready(), before) {
		t.Fatalf("adopted %v, want %v", b.ready(), before)
	}
	time.Sleep(200 * time.Millisecond) // keepState's coalescing
	if err := b.sup.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if got := fileID(t, stateFile); got != ino {
		t.Errorf("state file rewritten (inode/mtime %s → %s) though nothing changed", ino, got)
	}
	b.sup.Thaw()
	if _, err := restart(t, b); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the state file lists the new instances", func() bool {
		st := readState(t, stateFile)
		for _, in := range st.Instances {
			if before[in.Port] == in.Pid {
				return false
			}
		}
		// Not by its inode: ext4 gives a new file the number of the one
		// its rename replaced as often as not.
		return len(st.Instances) == 2
	})
}

func readState(t *testing.T, path string) *handoff.State {
	t.Helper()
	st, err := handoff.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writeState(t *testing.T, path string, st *handoff.State) {
	t.Helper()
	if err := handoff.Write(path, st); err != nil {
		t.Fatal(err)
	}
}

// fileID is path's inode and modification time: a rename over it changes
// at least the time (ext4 may give the new file the old one's number).
func fileID(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d/%d", fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime().UnixNano())
}
