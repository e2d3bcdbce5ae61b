package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"smoothserve/accesslog"
	"smoothserve/config"
	"smoothserve/proxy"
	"smoothserve/supervisor"
	"smoothserve/upstream"
)

// countersDaemon is a Daemon with what snapshot and goOnFrom read: a
// proxy and a supervisor of services (not running), and no socket.
func countersDaemon(t *testing.T, services ...*config.Service) *Daemon {
	t.Helper()
	px, err := proxy.New(proxy.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	sets := map[string]*upstream.Set{}
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), px: px, sets: sets}
	d.sup = supervisor.New(&config.Config{Services: services}, sets, nil)
	t.Cleanup(d.closeLogs)
	return d
}

// dropLines opens cfg's AccessLog (a FIFO) in d with a reader, and has it
// drop n lines: its reader gone, a write of them fails.
func dropLines(t *testing.T, d *Daemon, cfg *config.Config, n int) *accesslog.Log {
	t.Helper()
	r := fifoReader(t, filepath.Join(cfg.Dir, cfg.AccessLog))
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
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := lg.Flush(ctx); err != nil {
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
	// A log the previous process had and this one has not (a path a
	// reload moved) goes on being reported.
	gone := filepath.Join(cfg.Dir, "moved.log")
	passed.LogDropped[gone] = 7
	next := countersDaemon(t)
	next.goOnFrom(passed)
	dropLines(t, next, cfg, 2)
	// And a log that dropped nothing is reported, at 0.
	quiet := filepath.Join(cfg.Dir, "quiet.log")
	if next.logFor(cfg, &config.Service{Name: "api", AccessLog: quiet}) == nil {
		t.Fatal("the quiet log did not open")
	}
	want := map[string]uint64{path: 5, gone: 7, quiet: 0}
	if got := next.logs.dropped(); !maps.Equal(got, want) {
		t.Fatalf("after the upgrade: %v, want %v (%s: 3 before it, 2 after)", got, want, path)
	}
}

// TestAStuckAccessLogHoldsUpNoScrape: a log whose writer waits on its
// file (a FIFO nobody reads) while SIGUSR1 reopens the logs: a scrape (and
// an upgrade's counters) still reads every log's count at once.
func TestAStuckAccessLogHoldsUpNoScrape(t *testing.T) {
	cfg, path := fifoConfig(t)
	r := fifoReader(t, path)
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
	fifoReader(t, path)
	select {
	case <-reopened:
	case <-time.After(10 * time.Second):
		t.Fatal("the reopen did not end once the FIFO had a reader")
	}
}

// fifoReader opens the FIFO at path for reading (without waiting for a
// writer), its pipe set to 64 KiB whatever the page size; closed at the
// test's end.
func fifoReader(t *testing.T, path string) *os.File {
	t.Helper()
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, err := unix.FcntlInt(r.Fd(), unix.F_SETPIPE_SZ, 64<<10); err != nil {
		t.Fatal(err)
	}
	return r
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

// TestCloseLogsClosesEveryHealthyLog: at exit, a log whose writer waits
// on its file (a FIFO nobody reads) and an open that waits for a FIFO's
// reader keep none of the healthy logs from being written out and closed:
// closeLogs closes them all at once, and the log that open adds once its
// reader comes, and gives up on the stuck one after closeLogsWithin.
func TestCloseLogsClosesEveryHealthyLog(t *testing.T) {
	d := countersDaemon(t)
	cfg, path := fifoConfig(t)
	fifoReader(t, path) // reads nothing
	stuck := d.logFor(cfg, &config.Service{Name: "web"})
	b := accesslog.Buffer()
	for len(*b) < 512<<10 {
		*b = append(*b, "a line that waits for a reader\n"...)
	}
	stuck.Submit(b)
	var healthy []*accesslog.Log
	for i := range 10 {
		lg := d.logFor(cfg, &config.Service{Name: fmt.Sprint("s", i), AccessLog: fmt.Sprintf("s%d.log", i)})
		if lg == nil {
			t.Fatal("a log did not open")
		}
		healthy = append(healthy, lg)
	}
	noReader := filepath.Join(cfg.Dir, "no-reader.fifo")
	if err := syscall.Mkfifo(noReader, 0o600); err != nil {
		t.Fatal(err)
	}
	go d.logFor(cfg, &config.Service{Name: "api", AccessLog: noReader}) // its open waits for a reader
	// closeLogs is to find that open under way: it holds opening (not
	// merely after a time a loaded machine may outrun).
	for deadline := time.Now().Add(10 * time.Second); d.logs.opening.TryLock(); time.Sleep(time.Millisecond) {
		d.logs.opening.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the open of the FIFO without a reader did not begin")
		}
	}
	readerCame := make(chan *os.File, 1)
	go func() {
		time.Sleep(time.Second) // into closeLogs: the open ends
		r, _ := os.OpenFile(noReader, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		readerCame <- r
	}()
	defer func() {
		if r := <-readerCame; r != nil {
			r.Close()
		}
	}()
	t0 := time.Now()
	d.closeLogs()
	if took := time.Since(t0); took > closeLogsWithin+time.Second {
		t.Errorf("closeLogs took %v, want %v at most", took, closeLogsWithin)
	}
	added := d.logs.get(noReader)
	if added == nil {
		t.Fatal("the open under way added no log")
	}
	for i, lg := range append(healthy, added) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		if lg.Flush(ctx) == nil {
			t.Errorf("log %d (10: the one the open added) is still open after closeLogs", i)
		}
		cancel()
	}
}
