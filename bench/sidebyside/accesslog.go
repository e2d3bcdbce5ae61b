package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The cost of the access log: smoothserve with its access log off and on
// (smoothserve.yaml's AccessLog: off, or a file in the bench's folder with
// AccessLogFormat: combined), and nginx the same way (access_log off, or
// access_log FILE combined), over plain HTTP with the GET / workload. nginx
// is the yardstick: its on ÷ off ratio beside smoothserve's. Each mode is
// a process of its own: two smoothserve daemons, each with its 3
// instances, and two nginx, each in front of the instances of the daemon
// of its mode. In each round the two runs of a proxy are adjacent, so that
// their ratio shares the noise, and which of them goes first alternates.

// logMode is one row of the access log table.
type logMode struct {
	name  string // the row
	proxy string // "smoothserve" or "nginx": the pair it is half of
	on    bool
}

var logModes = []logMode{
	{name: "smoothserve, access log off", proxy: "smoothserve"},
	{name: "smoothserve, access log on", proxy: "smoothserve", on: true},
	{name: "nginx, access log off", proxy: "nginx"},
	{name: "nginx, access log on", proxy: "nginx", on: true},
}

// accessLogBar is the least throughput with the access log on ÷ off that
// the issue asks of smoothserve.
const accessLogBar = 0.9

// logSettle is how long every run of the table waits after its warm-up and
// after its measured run, before the lines of the logs are counted:
// smoothserve writes its lines every 100 ms.
const logSettle = 500 * time.Millisecond

var accessLogWorkload = workload{
	title: "Access log: GET /, 64 connections, smoothserve and nginx with their access log off and on",
	conns: 64,
	path:  "/",
}

// logPair is a proxy's two rows, off and on, and what its log took in the
// measured runs of the on row.
type logPair struct {
	proxy   string
	off, on string  // the rows
	bar     float64 // the least on ÷ off throughput asked of it; 0: none
	// lines and size are what the log grew by during the measured runs;
	// requests, what wrk counted in them.
	lines, size, requests int64
}

// logTarget is one mode, running.
type logTarget struct {
	mode logMode
	url  string
	pids func() []int
	stop func()
	file *logFile // nil when off
	// quiet are files that must not appear: the log a mode that is off
	// would have written.
	quiet []string
	pair  *logPair
}

// logOrder is the order of logModes in round r: the pairs take turns at
// going first, and so do off and on within each pair.
func logOrder(r int) []int {
	pairs := [][2]int{{0, 1}, {2, 3}}
	var order []int
	for j := range pairs {
		p := pairs[(r+j)%len(pairs)]
		if r%2 == 1 {
			p[0], p[1] = p[1], p[0]
		}
		order = append(order, p[0], p[1])
	}
	return order
}

// accessLogCost measures smoothserve and nginx with their access log off
// and on, in rounds.
func (b *bench) accessLogCost(ctx context.Context) (*table, error) {
	w := accessLogWorkload
	t := &table{title: w.title, command: w.command(b.duration), base: "nginx, access log off"}
	pairs := map[string]*logPair{}
	for _, m := range logModes {
		t.row(m.name)
		p := pairs[m.proxy]
		if p == nil {
			p = &logPair{proxy: m.proxy}
			if m.proxy == "smoothserve" {
				p.bar = accessLogBar
			}
			pairs[m.proxy] = p
			t.pairs = append(t.pairs, p)
		}
		if m.on {
			p.on = m.name
		} else {
			p.off = m.name
		}
	}
	targets, err := b.startLogTargets(pairs)
	if err != nil {
		return nil, err
	}
	for r := range b.rounds {
		for _, k := range logOrder(r) {
			g := targets[k]
			res, peak, cpu, err := b.measureLogged(ctx, g, w)
			if err != nil {
				return t, fmt.Errorf("%s: %w", g.mode.name, err)
			}
			t.row(g.mode.name).add(res, peak)
			t.addCPU(g.mode.name, cpu)
			progress("access log", r, b.rounds, g.mode.name, res)
		}
	}
	for _, g := range targets {
		g.stop()
		for _, f := range g.quiet {
			if _, err := os.Stat(f); err == nil {
				t.row(g.mode.name).note(fmt.Sprintf("**wrote %s, with its access log off**", f))
			}
		}
		if g.file != nil {
			s := t.row(g.mode.name)
			if g.pair.lines > 0 {
				s.note(fmt.Sprintf("%d lines in the measured runs, %.0f bytes each; the first: `%s`",
					g.pair.lines, float64(g.pair.size)/float64(g.pair.lines), g.file.first))
			} else {
				s.note("**no line in its access log**")
			}
		}
	}
	t.notes = append(t.notes,
		"smoothserve: `AccessLog: FILE` and `AccessLogFormat: combined` in smoothserve.yaml, or `AccessLog: off`; "+
			"its lines are written off the request path, through a 64 KiB buffer every 100 ms",
		"nginx: `access_log FILE combined;` as nginx is configured by default (no `buffer=`: a write per request), or `access_log off;`",
		"each mode a process of its own: two smoothserve daemons with 3 instances each, and two nginx, each in front of the instances "+
			"of the daemon of its mode; each round runs the two modes of a proxy one after the other, which of them first alternating",
		fmt.Sprintf("the logs are files in the bench's folder, on %s; every run waits %s after its warm-up and after its measured run (the lines are counted then)",
			fsType(b.dir), logSettle))
	return t, nil
}

// startLogTargets starts the smoothserve daemons, then the nginx in front
// of their instances, in the order of logModes.
func (b *bench) startLogTargets(pairs map[string]*logPair) ([]*logTarget, error) {
	var nginx proxySetup
	for _, s := range otherProxies {
		if s.name == "nginx" {
			nginx = s
		}
	}
	targets := make([]*logTarget, len(logModes))
	instances := map[bool][]string{} // of the daemon of each mode
	for _, proxy := range []string{"smoothserve", "nginx"} {
		for i, m := range logModes {
			if m.proxy != proxy {
				continue
			}
			dir := filepath.Join(b.dir, "accesslog-"+proxy+"-"+onOff(m.on))
			g := &logTarget{mode: m, pair: pairs[proxy]}
			var file string
			if m.on {
				file = filepath.Join(dir, "access.log")
				g.file = &logFile{path: file}
			} else {
				// Their default files (smoothserve: LogDir/access.log;
				// nginx: the prefix's logs/access.log) and the one of the
				// mode on.
				g.quiet = []string{filepath.Join(dir, "access.log"), filepath.Join(dir, "logs", "access.log")}
			}
			if proxy == "smoothserve" {
				d, err := startDaemon(b.bin, dir, daemonOptions{accessLog: file})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", m.name, err)
				}
				b.stops = append(b.stops, d.stop)
				addrs, err := d.waitReady(10*time.Second, d.first)
				if err == nil {
					err = waitServing(d.url(), 15*time.Second, d.first)
				}
				if err != nil {
					return nil, fmt.Errorf("%s on %s: %w", m.name, d.url(), err)
				}
				instances[m.on] = addrs
				g.url, g.pids, g.stop = d.url(), d.pids, d.stop
			} else {
				p, err := startProxy(nginx, dir, instances[m.on], proxyOptions{accessLog: file})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", m.name, err)
				}
				b.stops = append(b.stops, p.stop)
				g.url, g.pids, g.stop = p.url, p.pids, p.stop
			}
			targets[i] = g
		}
	}
	return targets, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// measureLogged is measure, with a pause of logSettle after the warm-up and
// after the measured run, and the lines the log took in the measured run
// counted.
func (b *bench) measureLogged(ctx context.Context, g *logTarget, w workload) (wrkResult, int64, cpuCount, error) {
	if err := b.warmUp(ctx, g.url, w); err != nil {
		return wrkResult{}, 0, cpuCount{}, err
	}
	sleepCtx(ctx, logSettle)
	if g.file != nil {
		if _, _, err := g.file.grown(); err != nil {
			return wrkResult{}, 0, cpuCount{}, err
		}
	}
	res, peak, cpu, err := b.measureRun(ctx, g.url, w, g.pids)
	if err != nil {
		return res, peak, cpu, err
	}
	sleepCtx(ctx, logSettle)
	if g.file != nil {
		lines, size, err := g.file.grown()
		if err != nil {
			return res, peak, cpu, err
		}
		g.pair.lines += lines
		g.pair.size += size
		g.pair.requests += res.requests
	}
	return res, peak, cpu, ctx.Err()
}

// logFile counts what is appended to an access log.
type logFile struct {
	path   string
	offset int64  // read up to here
	first  string // its first line, once read
}

// grown reads what was appended to the file since the last call (nothing
// if it does not exist yet), and returns its complete lines and its size.
func (f *logFile) grown() (lines, size int64, err error) {
	fh, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer fh.Close()
	if _, err := fh.Seek(f.offset, io.SeekStart); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := fh.Read(buf)
		if f.first == "" && f.offset == 0 && size == 0 && n > 0 {
			line, _, _ := bytes.Cut(buf[:n], []byte{'\n'})
			f.first = string(line)
		}
		lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		size += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("reading %s: %w", f.path, err)
		}
	}
	f.offset += size
	return lines, size, nil
}

// fsType names the file system dir is on, as df does (ext4, tmpfs).
func fsType(dir string) string {
	out := command("", "df", "--output=fstype", dir)
	return strings.TrimSpace(out[strings.LastIndexByte(out, '\n')+1:])
}

// target is the pair's bar and whether on ÷ off met it, "–" if it has none.
func (p *logPair) target(off, on float64) string {
	switch {
	case p.bar == 0 || off == 0:
		return "–"
	case on/off >= p.bar:
		return fmt.Sprintf("≥ %.2f: met", p.bar)
	}
	return fmt.Sprintf("≥ %.2f: **not met**", p.bar)
}

// pairTable is the markdown of each pair's ratios, on ÷ off.
func pairTable(t *table) string {
	var b strings.Builder
	b.WriteString("#### Access log on ÷ off\n\n" +
		"Each proxy with its access log on against itself with it off. *Per round*: the ratio of the two runs of each round, " +
		"which ran one after the other. *CPU*: the proxy's own µs of CPU per request (perf, pooled over the rounds). " +
		"*Lines ÷ requests*: the lines the log grew by during the measured runs over the requests wrk counted in them " +
		"(a few more lines than requests: those answered after wrk stopped counting; fewer would be lines lost).\n\n")
	head := []string{"", "req/s off / on (median)", "req/s on ÷ off", "target", "per round", "p99 on ÷ off", "proxy's CPU per request, off / on", "CPU per request on ÷ off", "log lines ÷ requests"}
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	var verdicts []string
	for _, p := range t.pairs {
		off, on := t.row(p.off), t.row(p.on)
		var rounds []string
		for i := range min(len(off.runs), len(on.runs)) {
			rounds = append(rounds, ratio(on.runs[i].rps, off.runs[i].rps))
		}
		cpu, cpuRatio := "–", "–"
		if c0, c1 := t.cpu[p.off], t.cpu[p.on]; c0 != nil && c1 != nil {
			a, z := c0.perRequest("proxy"), c1.perRequest("proxy")
			cpu, cpuRatio = fmt.Sprintf("%.1f / %.1f µs", a, z), ratio(z, a)
		}
		lines := "–"
		if p.requests > 0 {
			lines = fmt.Sprintf("%.3f", float64(p.lines)/float64(p.requests))
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join([]string{
			p.proxy,
			fmt.Sprintf("%.0f / %.0f", off.rps(), on.rps()),
			"**" + ratio(on.rps(), off.rps()) + "**",
			p.target(off.rps(), on.rps()),
			strings.Join(rounds, " / "),
			ratio(float64(on.p99()), float64(off.p99())),
			cpu,
			cpuRatio,
			lines,
		}, " | "))
		if p.bar > 0 && off.rps() > 0 {
			got := on.rps() / off.rps()
			verdict := "met"
			if got < p.bar {
				verdict = "**not met**"
			}
			verdicts = append(verdicts, fmt.Sprintf("- %s: throughput with the access log on ÷ off %.2f; the issue asks at least %.2f: %s",
				p.proxy, got, p.bar, verdict))
		}
	}
	if len(verdicts) > 0 {
		b.WriteString("\n" + strings.Join(verdicts, "\n") + "\n")
	}
	return b.String()
}
