package daemon

import (
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"smoothserve/config"
)

// TestAccessLogLossesGoOnAcrossAnUpgrade: the lines each access log lost
// (smoothserve_access_log_dropped_lines_total) are handed to the next
// process with the other counters and added to its own, and a log that
// lost none is reported too, at 0.
func TestAccessLogLossesGoOnAcrossAnUpgrade(t *testing.T) {
	dir := t.TempDir()
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer d.closeLogs()
	cfg := &config.Config{Dir: dir, AccessLog: "access.log"}
	if d.logFor(cfg, &config.Service{Name: "web"}) == nil {
		t.Fatal("the access log did not open")
	}
	open, gone := filepath.Join(dir, "access.log"), filepath.Join(dir, "moved.log")
	raw, err := json.Marshal(counters{LogLost: map[string]uint64{open: 3, gone: 5}})
	if err != nil {
		t.Fatal(err)
	}
	var passed counters
	if err := json.Unmarshal(raw, &passed); err != nil {
		t.Fatal(err)
	}
	if got := d.logs.dropped(); len(got) != 1 || got[open] != 0 {
		t.Fatalf("before the previous process's counts: %v, want %s at 0", got, open)
	}
	d.logs.setBase(passed.LogLost)
	if got := d.logs.dropped(); len(got) != 2 || got[open] != 3 || got[gone] != 5 {
		t.Fatalf("after them: %v, want %s 3 and %s 5", got, open, gone)
	}
}
