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
// (2s before each), BENCH_ROUNDS (3), BENCH_ONLY for some parts only (a
// comma list of plain, https, handshakes, connections, compress, accesslog
// and restarts; sidebyside is plain and https), BENCH_KEEP=1 to keep the temporary folder with every
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"smoothserve/internal/nofile"
)

type settings struct {
	duration, warmup time.Duration
	rounds           int
	keep             bool
	parts            map[string]bool // the parts run, of allParts
	perf             bool            // count each measured run's CPU by process (cpu.go)
}

// allParts are the parts of the bench, in the order they run: the plain
// HTTP tables side by side, the HTTPS ones (tls.go), new-connection TLS
// handshakes (handshakes.go), many connections (connections.go), the cost
// of compression (compress.go), of the access log (accesslog.go) and of
// restarts and upgrades (restarts.go).
var allParts = []string{"plain", "https", "handshakes", "connections", "compress", "accesslog", "restarts"}

// parseOnly reads BENCH_ONLY: empty for every part, "sidebyside" for plain
// and https (the proxies side by side), or a comma list of parts.
func parseOnly(v string) (map[string]bool, error) {
	parts := map[string]bool{}
	switch v {
	case "":
		v = strings.Join(allParts, ",")
	case "sidebyside":
		v = "plain,https"
	}
	for _, p := range strings.Split(v, ",") {
		if !slices.Contains(allParts, p) {
			return nil, fmt.Errorf("BENCH_ONLY=%q: want sidebyside, or a comma list of %s", v, strings.Join(allParts, ", "))
		}
		parts[p] = true
	}
	return parts, nil
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
	if s.parts, err = parseOnly(os.Getenv("BENCH_ONLY")); err != nil {
		return s, err
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

// tlsWorkloads are the HTTPS tables (tls.go): GET / over HTTP/1.1 with wrk
// and over HTTP/2 with h2load.
var tlsWorkloads = []workload{
	{title: "HTTPS, HTTP/1.1: GET /, 64 connections", conns: 64, path: "/", tls: true},
	{title: "HTTPS, HTTP/2: GET /, 64 connections of 10 streams", conns: 64, path: "/", tls: true, streams: 10},
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
		err = requireTools(s.parts["https"])
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
	if b.noFile, err = nofile.Raise(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v: the connections part may run short of descriptors\n", err)
	}
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
	noFile    uint64   // the soft limit of open files, raised to the hard one
}

func (b *bench) cleanup() {
	for i := len(b.stops) - 1; i >= 0; i-- {
		b.stops[i]()
	}
	b.stops = nil
}

func (b *bench) run(ctx context.Context) (string, error) {
	runs := 0
	for _, ws := range b.sideBySideWorkloads() {
		runs += b.rounds * len(ws) * (1 + len(otherProxies))
	}
	if b.parts["handshakes"] {
		runs += b.rounds * len(handshakeModes) * (1 + len(otherProxies))
	}
	var more time.Duration // what is not a load run: the idle measurements
	if b.parts["connections"] {
		runs += b.rounds * len(connWorkloads) * (1 + len(otherProxies))
		more = time.Duration(b.rounds*len(idleCounts)*(1+len(otherProxies))) * (idleWait + 5*time.Second)
	}
	if b.parts["compress"] {
		runs += b.rounds * len(compressModes)
	}
	if b.parts["accesslog"] {
		runs += b.rounds * len(logModes)
	}
	if b.parts["restarts"] {
		runs += b.rounds * len(restartModes)
	}
	fmt.Fprintf(os.Stderr, "bench: %d load runs of %s after a %s warm-up: about %s\n",
		runs, b.duration, b.warmup, (time.Duration(runs)*(b.duration+b.warmup) + more + 30*time.Second).Round(time.Minute))
	var err error
	if b.bin, err = build(b.root, b.dir); err != nil {
		return "", err
	}
	var report strings.Builder
	report.WriteString("## smoothserve side by side with nginx, HAProxy and Caddy\n\n")
	report.WriteString(about(b.root, b.settings))
	report.WriteString("- configurations: bench/sidebyside/configs/; peak RSS is VmHWM summed over the proxy's processes (nginx: master and workers), " +
		"the highest of the rounds; errors are wrk's socket errors and responses ≥ 400, over all rounds\n\n")

	var tables []markdowner
	if b.parts["plain"] || b.parts["https"] || b.parts["handshakes"] {
		if tables, err = b.sideBySide(ctx); err != nil {
			return "", err
		}
	}
	if b.parts["connections"] {
		ts, err := b.connectionsCost(ctx)
		tables = append(tables, ts...)
		if err != nil {
			return "", err
		}
	}
	if b.parts["compress"] {
		t, err := b.compressCost(ctx)
		if err != nil {
			return "", err
		}
		tables = append(tables, t)
	}
	if b.parts["accesslog"] {
		t, err := b.accessLogCost(ctx)
		if err != nil {
			return "", err
		}
		tables = append(tables, t)
	}
	if b.parts["restarts"] {
		t, err := b.restartCost(ctx)
		if err != nil {
			return "", err
		}
		tables = append(tables, t)
	}
	for i, t := range tables {
		if i > 0 {
			report.WriteString("\n")
		}
		report.WriteString(t.markdown())
	}
	return report.String(), nil
}

// sideBySideWorkloads are the tables of the side-by-side part: the plain
// workloads, then the HTTPS ones, as b.parts asks.
func (b *bench) sideBySideWorkloads() [][]workload {
	var ws [][]workload
	if b.parts["plain"] {
		ws = append(ws, workloads)
	}
	if b.parts["https"] {
		ws = append(ws, tlsWorkloads)
	}
	return ws
}

// sideBySide starts smoothserve and, in front of its 3 instances, the other
// proxies; then runs every workload against each in turn, and the
// handshakes.
func (b *bench) sideBySide(ctx context.Context) ([]markdowner, error) {
	proxies, err := b.startProxies()
	if err != nil {
		return nil, err
	}
	var tables []markdowner
	for _, ws := range b.sideBySideWorkloads() {
		for _, w := range ws {
			t, err := b.sideBySideTable(ctx, proxies, w)
			if t != nil {
				tables = append(tables, t)
			}
			if err != nil {
				return tables, err
			}
		}
	}
	if b.parts["handshakes"] {
		ts, err := b.handshakeTables(ctx, proxies)
		for _, t := range ts {
			tables = append(tables, t)
		}
		if err != nil {
			return tables, err
		}
	}
	for _, p := range proxies {
		p.stop()
	}
	return tables, nil
}

// startProxies starts smoothserve, then the other proxies in front of its
// instances, all with a TLS port serving one new certificate.
func (b *bench) startProxies() ([]*proxy, error) {
	cert, err := makeCert(filepath.Join(b.dir, "tls"))
	if err != nil {
		return nil, err
	}
	d, err := startDaemon(b.bin, filepath.Join(b.dir, "smoothserve"), daemonOptions{cert: cert})
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
	proxies := []*proxy{{name: "smoothserve", url: d.url(), tlsURL: tlsURL(d.httpsPort), pids: d.pids, stop: d.stop}}
	for _, s := range otherProxies {
		p, err := startProxy(s, filepath.Join(b.dir, strings.ToLower(s.name)), addrs, proxyOptions{cert: cert})
		if err != nil {
			return nil, err
		}
		b.stops = append(b.stops, p.stop)
		proxies = append(proxies, p)
	}
	fmt.Fprintf(os.Stderr, "bench: demo instances %s; %s\n", strings.Join(addrs, " "), describe(proxies))
	if b.parts["https"] || b.parts["handshakes"] {
		if err := waitTLS(proxies, 10*time.Second); err != nil {
			return nil, err
		}
	}
	return proxies, nil
}

// sideBySideTable runs w against each proxy in turn, in rounds. A proxy
// without HTTP/2 has no row in an HTTP/2 table, and a note says why.
func (b *bench) sideBySideTable(ctx context.Context, proxies []*proxy, w workload) (*table, error) {
	t := &table{title: w.title, command: w.command(b.duration), base: "nginx"}
	if w.streams > 0 {
		t.client = "h2load"
		t.notes = append(t.notes, "h2load: p50 and p99 of the time to each response's end, from its --log-file; "+
			"errors are its failed requests (responses ≥ 400 as non-2xx, stream errors as read), not the connections it could not open")
	}
	if w.tls {
		t.notes = append(t.notes, tlsNote(proxies))
	}
	if w.streams > 0 {
		// HTTP/2 against the HTTP/2 servers of each kind: Caddy's is Go's
		// net/http, as smoothserve's is.
		t.alsoBases = []string{"Caddy", "HAProxy"}
	}
	var in []*proxy
	for _, p := range proxies {
		if w.streams > 0 && p.noH2 != "" {
			t.notes = append(t.notes, fmt.Sprintf("%s: no HTTP/2 row: %s", p.name, p.noH2))
			continue
		}
		t.row(p.name)
		in = append(in, p)
	}
	for r := range b.rounds {
		for i := range in {
			p := in[(r+i)%len(in)]
			url := p.url
			if w.tls {
				url = p.tlsURL
			}
			res, peak, cpu, err := b.measure(ctx, url, w, p.pids)
			if err != nil {
				return t, fmt.Errorf("%s: %w", p.name, err)
			}
			t.row(p.name).add(res, peak)
			t.addCPU(p.name, cpu)
			progress(w.title, r, b.rounds, p.name, res)
		}
	}
	return t, nil
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
	if err := b.warmUp(ctx, url, w); err != nil {
		return wrkResult{}, 0, cpuCount{}, err
	}
	return b.measureRun(ctx, url, w, pids)
}

// warmUp runs wrk for b.warmup, if any, and forgets the result.
func (b *bench) warmUp(ctx context.Context, url string, w workload) error {
	if b.warmup > 0 {
		if _, err := runWrk(ctx, url, w, b.warmup); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	return nil
}

// measureRun is measure without the warm-up.
func (b *bench) measureRun(ctx context.Context, url string, w workload, pids func() []int) (wrkResult, int64, cpuCount, error) {
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
