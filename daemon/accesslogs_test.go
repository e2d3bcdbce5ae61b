package daemon

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"smoothserve/accesslog"
	"smoothserve/config"
	"smoothserve/proxy"
	"smoothserve/supervisor"
	"smoothserve/upstream"
)

// countersDaemon is a Daemon with what snapshot and goOnFrom read: a
// proxy and a supervisor with no service, and no socket.
func countersDaemon(t *testing.T) *Daemon {
	t.Helper()
	px, err := proxy.New(proxy.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	sets := map[string]*upstream.Set{}
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), px: px, sets: sets}
	d.sup = supervisor.New(&config.Config{}, sets, nil)
	t.Cleanup(d.closeLogs)
	return d
}

// dropLines opens cfg's AccessLog (a FIFO) in d with a reader, and has it
// drop n lines: its reader gone, a write of them fails.
func dropLines(t *testing.T, d *Daemon, cfg *config.Config, n int) *accesslog.Log {
	t.Helper()
	r, err := os.OpenFile(filepath.Join(cfg.Dir, cfg.AccessLog), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	lg := d.logFor(cfg, &config.Service{Name: "web"})
	if lg == nil {
		t.Fatal("the access log did not open")
	}
	r.Close()
	b := accesslog.Buffer()
	for range n {
		*b = append(*b, "a line\n"...)
	}
	lg.Submit(b)
	if err := lg.Flush(); err != nil {
		t.Fatal(err)
	}
	return lg
}

// TestAccessLogDropsGoOnAcrossAnUpgrade: the lines each access log
// dropped (smoothserve_access_log_dropped_lines_total) go to the next
// process in the counters an upgrade passes, and are added to its own.
func TestAccessLogDropsGoOnAcrossAnUpgrade(t *testing.T) {
	cfg, path := fifoConfig(t)
	old := countersDaemon(t)
	dropLines(t, old, cfg, 3)
	raw, err := json.Marshal(old.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var passed counters
	if err := json.Unmarshal(raw, &passed); err != nil {
		t.Fatal(err)
	}
	next := countersDaemon(t)
	next.goOnFrom(passed)
	dropLines(t, next, cfg, 2)
	if got := next.logs.dropped(); len(got) != 1 || got[path] != 5 {
		t.Fatalf("after the upgrade: %v, want %s at 5 (3 before it, 2 after)", got, path)
	}
}

// TestAStuckAccessLogHoldsUpNoScrape: a log whose writer waits on its
// file (a FIFO nobody reads) while SIGUSR1 reopens the logs: a scrape (and
// an upgrade's counters) still reads every log's count at once.
func TestAStuckAccessLogHoldsUpNoScrape(t *testing.T) {
	cfg, path := fifoConfig(t)
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := countersDaemon(t)
	lg := d.logFor(cfg, &config.Service{Name: "web"})
	if lg == nil {
		t.Fatal("the access log did not open")
	}
	b := accesslog.Buffer()
	for len(*b) < 512<<10 { // more than the pipe holds: the writer waits
		*b = append(*b, "a line that waits for a reader\n"...)
	}
	lg.Submit(b)
	reopened := make(chan struct{})
	go func() { d.reopenLogs(); close(reopened) }()
	time.Sleep(100 * time.Millisecond) // the reopen waits for the writer
	got := make(chan map[string]uint64, 1)
	go func() { got <- d.logs.dropped() }()
	select {
	case m := <-got:
		if _, ok := m[path]; !ok {
			t.Errorf("dropped() = %v, want %s in it", m, path)
		}
	case <-time.After(2 * time.Second):
		t.Error("a scrape's read of the dropped lines waited for a log's reopen")
	}
	// The reader gone, the writer's write fails; then the reopen waits
	// for a reader of the FIFO: give it one.
	r.Close()
	for deadline := time.Now().Add(10 * time.Second); lg.Dropped() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the write to the FIFO did not fail without a reader")
		}
	}
	r2, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	<-reopened
}

// fifoConfig is a configuration whose AccessLog is a FIFO, at path.
func fifoConfig(t *testing.T) (cfg *config.Config, path string) {
	t.Helper()
	cfg = &config.Config{Dir: t.TempDir(), AccessLog: "access.fifo"}
	path = filepath.Join(cfg.Dir, cfg.AccessLog)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, path
}
