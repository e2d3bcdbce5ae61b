package daemon

import (
	"context"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"smoothserve/accesslog"
	"smoothserve/config"
)

// accessLogs are the open access logs, one per path: smoothserve.yaml's
// AccessLog, and a service's own access_log. A log is opened when a
// service first needs it and stays open until the daemon ends; SIGUSR1
// reopens them all (after logrotate moved them).
//
// Ownership: byPath and base under mu, held for reading or changing them
// only: a log's open, reopen, flush or close can wait on its file (a FIFO
// without a reader, a hung mount), and a scrape or an upgrade's counters
// must not wait for it. opening makes one open at a time, so that a path
// is opened once; closeLogs waits for it (within its bound) to close a
// log an open under way adds.
type accessLogs struct {
	opening sync.Mutex
	mu      sync.Mutex
	byPath  map[string]*accesslog.Log
	base    map[string]uint64 // lines the previous processes dropped, by path
}

// dropped is the lines each log dropped, the previous processes' included,
// by path made valid UTF-8 (a metric's label, a JSON key: two paths that
// differ only in invalid bytes are added up).
func (l *accessLogs) dropped() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.byPath)+len(l.base))
	for path, n := range l.base {
		out[strings.ToValidUTF8(path, "\uFFFD")] += n
	}
	for path, lg := range l.byPath {
		out[strings.ToValidUTF8(path, "\uFFFD")] += uint64(lg.Dropped())
	}
	return out
}

// setBase makes the previous process's counts the base of this one's.
func (l *accessLogs) setBase(base map[string]uint64) {
	l.mu.Lock()
	l.base = base
	l.mu.Unlock()
}

func (l *accessLogs) get(path string) *accesslog.Log {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byPath[path]
}

// all is the open logs now.
func (l *accessLogs) all() map[string]*accesslog.Log {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.byPath)
}

// logFor is the access log of svc in cfg, opened if need be; nil when off.
// A zero svc gets AccessLog's: where requests no service takes go.
// A log that cannot be opened is logged, and the service's requests are
// not logged (serving goes on).
func (d *Daemon) logFor(cfg *config.Config, svc *config.Service) *accesslog.Log {
	path := cfg.AccessLog
	switch svc.AccessLog {
	case "off":
		return nil
	case "":
	default:
		path = svc.AccessLog
	}
	if path == "" {
		return nil
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(cfg.Dir, path)
	}
	l := &d.logs
	l.opening.Lock()
	defer l.opening.Unlock()
	if lg := l.get(path); lg != nil {
		return lg
	}
	format, err := accesslog.ParseFormat(cfg.AccessLogFormat)
	if err != nil {
		d.log.Error("access log", "path", path, "err", err)
		return nil
	}
	lg, err := accesslog.Open(path, format)
	if err != nil {
		if svc.Name == "" {
			d.log.Error("the access log cannot be opened; requests no service takes are not logged", "err", err)
		} else {
			d.log.Error("the access log cannot be opened; the service's requests are not logged", "service", svc.Name, "err", err)
		}
		return nil
	}
	l.mu.Lock()
	if l.byPath == nil {
		l.byPath = make(map[string]*accesslog.Log)
	}
	l.byPath[path] = lg
	l.mu.Unlock()
	return lg
}

// settled is the open logs once no open is under way (which may wait on
// its file): none is missed.
func (l *accessLogs) settled() map[string]*accesslog.Log {
	l.opening.Lock()
	defer l.opening.Unlock()
	return l.all()
}

// atOnce runs f for each open log, each on a goroutine of its own, and
// returns when all have: a log whose writer waits on its file holds up
// none of the others. It returns how many logs there were.
func (l *accessLogs) atOnce(f func(path string, lg *accesslog.Log)) int {
	logs := l.all()
	var wg sync.WaitGroup
	for path, lg := range logs {
		wg.Go(func() { f(path, lg) })
	}
	wg.Wait()
	return len(logs)
}

// reopenLogs reopens every access log (SIGUSR1), all at once.
func (d *Daemon) reopenLogs() {
	n := d.logs.atOnce(func(path string, lg *accesslog.Log) {
		if err := lg.Reopen(); err != nil {
			d.log.Error("reopening the access log", "path", path, "err", err)
		}
	})
	d.log.Info("access logs reopened (SIGUSR1)", "logs", n)
}

// flushLogs writes what the access logs were given so far, so that their
// counts of dropped lines take it in, all at once, returning when ctx is
// done at the latest.
func (d *Daemon) flushLogs(ctx context.Context) {
	d.logs.atOnce(func(path string, lg *accesslog.Log) {
		if err := lg.Flush(ctx); err != nil {
			d.log.Warn("the access log is not written out", "path", path, "err", err)
		}
	})
}

// closeLogsWithin is how long closeLogs waits for the logs' writers.
const closeLogsWithin = 5 * time.Second

// closeLogs writes what is left and closes every access log, all at once,
// waiting closeLogsWithin at most: a log whose writer waits on its file (a
// FIFO nobody reads, a hung mount) keeps none of the others open, nor the
// process from exiting. A log an open under way adds is closed too,
// within the same time.
func (d *Daemon) closeLogs() {
	ctx, cancel := context.WithTimeout(context.Background(), closeLogsWithin)
	defer cancel()
	settled := make(chan map[string]*accesslog.Log, 1)
	go func() { settled <- d.logs.settled() }()
	var wg sync.WaitGroup
	closing := map[*accesslog.Log]bool{}
	closeAll := func(logs map[string]*accesslog.Log) {
		for _, lg := range logs {
			if !closing[lg] {
				closing[lg] = true
				wg.Go(lg.Close)
			}
		}
	}
	closeAll(d.logs.all())
	select {
	case logs := <-settled:
		closeAll(logs)
	case <-ctx.Done():
		d.log.Warn("an access log's open waits on its file: that log is not closed", "waited", closeLogsWithin)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	default:
	}
	select {
	case <-done:
	case <-ctx.Done():
		d.log.Warn("an access log waits on its file: not closed, its last lines not written", "waited", closeLogsWithin)
	}
}
