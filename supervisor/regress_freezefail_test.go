package supervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Freeze that cannot write the state file (disk full, here a folder that
// is a file) returns the error, and the daemon's upgrade then fails in
// prepare, which does not call abort (Thaw): everything stays frozen for
// good — no restart after a crash, every operator command ErrFrozen, no
// state file written again.
func TestRegressFreezeThatFailsToWriteStaysFrozen(t *testing.T) {
	cfg := testConfig(t, 1, "normal")
	blocker := filepath.Join(cfg.Dir, "blocker")
	stateFile := filepath.Join(blocker, "state.json")
	h := start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, nil, false) })
	awaitReady(t, h, 10*time.Second)
	// The state file's folder becomes unusable only now.
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Something to write: a new instance.
	if _, err := restart(t, h); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Freeze(); err == nil {
		t.Skip("Freeze wrote the state file")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sup.StopService(ctx, "web"); errors.Is(err, ErrFrozen) {
		t.Errorf("after a Freeze that failed (and so no upgrade, no Thaw) the supervisor is still frozen: StopService: %v", err)
	}
}
