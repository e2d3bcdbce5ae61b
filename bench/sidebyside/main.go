// Command sidebyside benchmarks smoothserve side by side with nginx, HAProxy
// and Caddy in front of the same 3 demo instances, then measures what
// rolling restarts and self-upgrades cost smoothserve under load. It prints
// markdown tables and writes them to bench/results/latest.md.
//
// Run it from the repository root (`make bench` does, after installing the
// tools with bench/install-deps.sh):
//
//	go run ./bench/sidebyside
//
// Environment: BENCH_DURATION (default 10s per measured run), BENCH_WARMUP
// (2s before each), BENCH_ROUNDS (3), BENCH_ONLY=sidebyside or restarts for
// one half, BENCH_KEEP=1 to keep the temporary folder with every
// configuration and log, BENCH_CPU=0 not to count each run's CPU by process
// with perf (done whenever perf is installed and may sample every CPU;
// BENCH_CPU=1 makes it an error if not).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type settings struct {
	duration, warmup time.Duration
	rounds           int
	keep             bool
	only             string // "", "sidebyside" or "restarts"
	perf             bool   // count each measured run's CPU by process (cpu.go)
}

func loadSettings() (settings, error) {
	s := settings{duration: 10 * time.Second, warmup: 2 * time.Second, rounds: 3, keep: os.Getenv("BENCH_KEEP") == "1"}
	var err error
	if s.duration, err = envSeconds("BENCH_DURATION", s.duration, time.Second); err != nil {
		return s, err
	}
	if s.warmup, err = envSeconds("BENCH_WARMUP", s.warmup, 0); err != nil {
		return s, err
	}
	switch s.only = os.Getenv("BENCH_ONLY"); s.only {
	case "", "sidebyside", "restarts":
	default:
		return s, fmt.Errorf("BENCH_ONLY=%q: want sidebyside or restarts", s.only)
	}
	if s.perf, err = perfAvailable(); err != nil {
		return s, err
	}
	if v := os.Getenv("BENCH_ROUNDS"); v != "" {
		if s.rounds, err = strconv.Atoi(v); err != nil || s.rounds < 1 {
			return s, fmt.Errorf("BENCH_ROUNDS=%q: want a whole number from 1", v)
		}
	}
	return s, nil
}

// envSeconds reads a duration of whole seconds ("5s", or "5"), as wrk takes
// them, of at least least.
func envSeconds(name string, def, least time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		d, err = time.ParseDuration(v + "s")
	}
	if err != nil || d%time.Second != 0 || d < least {
		return 0, fmt.Errorf("%s=%q: want whole seconds, at least %s (like 5s)", name, v, least)
	}
	return d, nil
}

var workloads = []workload{
	{title: "GET /, 64 connections", conns: 64, path: "/"},
	{title: "1 KiB responses, 100 connections", conns: 100, path: "/size?bytes=1024"},
	{title: "64 KiB responses, 100 connections", conns: 100, path: "/size?bytes=65536"},
}

func main() {
	os.Exit(run())
}

func run() int {
	s, err := loadSettings()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	root, err := os.Getwd()
	if err == nil {
		if _, err = os.Stat(filepath.Join(root, "go.mod")); err != nil {
			err = errors.New("run it from the repository root (make bench)")
		}
	}
	if err == nil {
		err = requireTools()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "smoothserve-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v: instances that exit after an upgrade may stay zombies\n", err)
	}
	reaping, stopReaping := context.WithCancel(context.Background())
	reaped := make(chan struct{})
	go func() {
		reapOrphans(reaping)
		close(reaped)
	}()

	b := &bench{settings: s, root: root, dir: dir}
	report, err := b.run(ctx)
	b.cleanup()
	stopReaping()
	<-reaped
	reapOrphansOnce() // what the last stop left
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(os.Stderr, "bench: %v\nbench: configurations and logs kept in %s\n", err, dir)
		return 1
	}
	if s.keep {
		fmt.Fprintf(os.Stderr, "bench: configurations and logs kept in %s\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	fmt.Print(report)
	out := filepath.Join(root, "bench", "results", "latest.md")
	err = os.MkdirAll(filepath.Dir(out), 0o755)
	if err == nil {
		err = os.WriteFile(out, []byte(report), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: writing %s: %v\n", out, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "bench: written to %s\n", out)
	return 0
}

// bench is one benchmark run; one goroutine (run's) owns it.
type bench struct {
	settings
	root, dir string
	bin       binaries
	stops     []func() // what cleanup stops, last started first
}

func (b *bench) cleanup() {
	for i := len(b.stops) - 1; i >= 0; i-- {
		b.stops[i]()
	}
	b.stops = nil
}

func (b *bench) run(ctx context.Context) (string, error) {
	runs := 0
	if b.only != "restarts" {
		runs += b.rounds * len(workloads) * (1 + len(otherProxies))
	}
	if b.only != "sidebyside" {
		runs += b.rounds * len(restartModes)
	}
	fmt.Fprintf(os.Stderr, "bench: %d wrk runs of %s after a %s warm-up: about %s\n",
		runs, b.duration, b.warmup, (time.Duration(runs)*(b.duration+b.warmup) + 30*time.Second).Round(time.Minute))
	var err error
	if b.bin, err = build(b.root, b.dir); err != nil {
		return "", err
	}
	var report strings.Builder
	report.WriteString("## smoothserve side by side with nginx, HAProxy and Caddy\n\n")
	report.WriteString(about(b.root, b.settings))
	report.WriteString("- configurations: bench/sidebyside/configs/; peak RSS is VmHWM summed over the proxy's processes (nginx: master and workers), " +
		"the highest of the rounds; errors are wrk's socket errors and responses ≥ 400, over all rounds\n\n")

	if b.only != "restarts" {
		tables, err := b.sideBySide(ctx)
		if err != nil {
			return "", err
		}
		for _, t := range tables {
			report.WriteString(t.markdown() + "\n")
		}
	}
	if b.only != "sidebyside" {
		t, err := b.restartCost(ctx)
		if err != nil {
			return "", err
		}
		report.WriteString(t.markdown())
	}
	return report.String(), nil
}

// sideBySide starts smoothserve and, in front of its 3 instances, the other
// proxies; then runs every workload against each in turn.
func (b *bench) sideBySide(ctx context.Context) ([]*table, error) {
	d, err := startDaemon(b.bin, filepath.Join(b.dir, "smoothserve"))
	if err != nil {
		return nil, err
	}
	b.stops = append(b.stops, d.stop)
	addrs, err := d.waitReady(10*time.Second, d.first)
	if err != nil {
		return nil, err
	}
	if err := waitServing(d.url(), 15*time.Second, d.first); err != nil {
		return nil, fmt.Errorf("smoothserve on %s: %w", d.url(), err)
	}
	proxies := []*proxy{{name: "smoothserve", url: d.url(), pids: d.pids, stop: d.stop}}
	for _, s := range otherProxies {
		p, err := startProxy(s, filepath.Join(b.dir, strings.ToLower(s.name)), addrs)
		if err != nil {
			return nil, err
		}
		b.stops = append(b.stops, p.stop)
		proxies = append(proxies, p)
	}
	fmt.Fprintf(os.Stderr, "bench: demo instances %s; %s\n", strings.Join(addrs, " "), describe(proxies))

	var tables []*table
	for _, w := range workloads {
		t := &table{
			title:   w.title,
			command: fmt.Sprintf("wrk -t%d -c%d -d%s --latency http://127.0.0.1:PORT%s", wrkThreads, w.conns, b.duration, w.path),
			base:    "nginx",
		}
		for _, p := range proxies {
			t.row(p.name)
		}
		tables = append(tables, t)
		for r := range b.rounds {
			for i := range proxies {
				p := proxies[(r+i)%len(proxies)]
				res, peak, cpu, err := b.measure(ctx, p.url, w, p.pids)
				if err != nil {
					return tables, fmt.Errorf("%s: %w", p.name, err)
				}
				t.row(p.name).add(res, peak)
				t.addCPU(p.name, cpu)
				progress(w.title, r, b.rounds, p.name, res)
			}
		}
	}
	for _, p := range proxies {
		p.stop()
	}
	return tables, nil
}

func describe(proxies []*proxy) string {
	var s []string
	for _, p := range proxies {
		s = append(s, fmt.Sprintf("%s %s", p.name, p.url))
	}
	return strings.Join(s, ", ")
}

// measure warms up, then runs wrk once, sampling the peak RSS of pids()
// (and counting the CPU by process, if b.perf).
func (b *bench) measure(ctx context.Context, url string, w workload, pids func() []int) (wrkResult, int64, cpuCount, error) {
	if b.warmup > 0 {
		if _, err := runWrk(ctx, url, w, b.warmup); err != nil {
			return wrkResult{}, 0, cpuCount{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	resetHWM(pids())
	sampling, stopSampling := context.WithCancel(ctx)
	peak := samplePeak(sampling, pids)
	res, count, err := b.runWrkCounted(ctx, url, w)
	stopSampling()
	return res, <-peak, count(), err
}

// started is when the benchmark started, for the progress lines.
var started = time.Now()

func progress(title string, round, rounds int, name string, r wrkResult) {
	fmt.Fprintf(os.Stderr, "bench: %s %s, round %d/%d, %s: %.0f req/s, p50 %s, p99 %s, %d errors\n",
		elapsed(), title, round+1, rounds, name, r.rps, fmtLatency(r.p50), fmtLatency(r.p99), r.errors())
}

// elapsed is the time since the start as [m:ss].
func elapsed() string {
	d := time.Since(started).Round(time.Second)
	return fmt.Sprintf("[%d:%02d]", int(d.Minutes()), int(d.Seconds())%60)
}
