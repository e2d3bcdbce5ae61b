package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// This file answers where a restart-cost run's CPU goes, by process: a
// loop's throughput ratio alone cannot tell smoothserve's share of its cost
// from the instances' (a restart's replacements are fresh processes of the
// service) and from the machine's. perf samples every CPU over each measured
// run (`perf record -a`), and the samples are counted by process name.

// perfHz is perf's sampling rate on each CPU: about 2 000 samples a second on
// 2 cores, enough for a share of a percent, and little enough to cost the
// measured run nothing that shows.
const perfHz = 997

// roleOf groups processes by name (comm) into the columns of the CPU
// tables. The bench itself runs the loops and the probe; the proxy is
// whichever of them the run measures (the others sit idle).
var roleOf = map[string]string{
	"demo":        "instances",
	"smoothserve": "proxy",
	"nginx":       "proxy",
	"haproxy":     "proxy",
	"caddy":       "proxy",
	"smoothtool":  "smoothtool",
	"wrk":         "wrk",
	"sidebyside":  "bench",
	"true":        "/bin/true",
	"swapper":     "idle",
}

// roles are every role, so that totals count every sample.
var roles = []string{"instances", "proxy", "smoothtool", "wrk", "bench", "/bin/true", "idle", "other"}

// perfAvailable reports whether BENCH_CPU asks for the CPU table (unset:
// whenever perf is installed), or why not.
func perfAvailable() (bool, error) {
	want := os.Getenv("BENCH_CPU")
	switch want {
	case "0":
		return false, nil
	case "", "1":
	default:
		return false, fmt.Errorf("BENCH_CPU=%q: want 0 or 1", want)
	}
	if _, err := exec.LookPath("perf"); err != nil {
		if want == "1" {
			return false, fmt.Errorf("BENCH_CPU=1: perf is not installed (Debian: linux-perf)")
		}
		return false, nil
	}
	return true, nil
}

// cpuCount is what perf counted during one or more runs, by role, and the
// requests wrk had answered in them.
type cpuCount struct {
	samples  map[string]int64
	requests int64
}

func (c *cpuCount) add(o cpuCount) {
	if c.samples == nil {
		c.samples = map[string]int64{}
	}
	for r, n := range o.samples {
		c.samples[r] += n
	}
	c.requests += o.requests
}

// perRequest is the µs of CPU (of all cores together) role took for each
// request answered.
func (c *cpuCount) perRequest(role string) float64 {
	if c.requests == 0 {
		return 0
	}
	return float64(c.samples[role]) / perfHz * 1e6 / float64(c.requests)
}

func (c *cpuCount) total() float64 {
	t := 0.0
	for _, r := range roles {
		t += c.perRequest(r)
	}
	return t
}

// runWrkCounted is runWrk, with perf counting the CPU during the run when
// b.perf. A perf that fails costs the count, not the run.
func (b *bench) runWrkCounted(ctx context.Context, url string, w workload) (wrkResult, cpuCount, error) {
	if !b.perf {
		r, err := runWrk(ctx, url, w, b.duration)
		return r, cpuCount{}, err
	}
	wait, perr := startPerf(ctx, b.duration, filepath.Join(b.dir, "perf.data"))
	r, err := runWrk(ctx, url, w, b.duration)
	var samples map[string]int64
	if perr == nil {
		samples, perr = wait()
	}
	if perr != nil {
		fmt.Fprintf(os.Stderr, "bench: CPU by process not counted: %v\n", perr)
		return r, cpuCount{}, err
	}
	return r, cpuCount{samples: samples, requests: r.requests}, err
}

// addCPU adds what perf counted in a run of row name.
func (t *table) addCPU(name string, c cpuCount) {
	if c.requests == 0 {
		return
	}
	if t.cpu == nil {
		t.cpu = map[string]*cpuCount{}
	}
	if t.cpu[name] == nil {
		t.cpu[name] = &cpuCount{}
	}
	t.cpu[name].add(c)
}

// startPerf samples every CPU for d into file; wait returns the samples by
// role.
func startPerf(ctx context.Context, d time.Duration, file string) (wait func() (map[string]int64, error), err error) {
	cmd := exec.CommandContext(ctx, "perf", "record", "-a", "-q", "-F", strconv.Itoa(perfHz), "-o", file,
		"--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	return func() (map[string]int64, error) {
		defer os.Remove(file)
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("perf record: %w\n%s", err, out.String())
		}
		rep, err := exec.CommandContext(ctx, "perf", "report", "-i", file, "--sort", "comm", "--stdio", "-n", "-q").Output()
		if err != nil {
			return nil, fmt.Errorf("perf report -i %s: %w", file, err)
		}
		return parsePerfComms(string(rep))
	}, nil
}

// parsePerfComms reads `perf report --sort comm --stdio -n -q`: lines of
// percentage, samples and process name.
func parsePerfComms(report string) (map[string]int64, error) {
	samples := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(report))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasSuffix(f[0], "%") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("perf report: line %q: %w", sc.Text(), err)
		}
		role, ok := roleOf[strings.Join(f[2:], " ")]
		if !ok {
			role = "other"
		}
		samples[role] += n
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("perf report: no samples in %q", report)
	}
	return samples, nil
}

// cpuTable is the markdown of where the CPU went in each row's runs,
// against the row t.base: for the restart-cost table (t.cycles) with
// smoothserve's share of what a loop adds, for a side-by-side table with
// each proxy's CPU per request against nginx's.
func cpuTable(t *table) string {
	base := t.cpu[t.base]
	if base == nil || base.requests == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#### Where the CPU goes: µs of CPU per request, by process\n\n"+
		"`perf record -a -F %d` over each measured run above, samples counted by process name and divided by "+
		"the requests wrk counted: the columns add up to the 2 cores' time per request (the inverse of throughput, "+
		"pooled over the rounds). *proxy* is the proxy measured; *other* is the kernel's threads and the rest.", perfHz)
	cols := []string{"instances", "proxy", "wrk", "bench", "idle", "other"}
	head := []string{"", "req/s ÷ " + t.base}
	if t.cycles {
		cols = []string{"instances", "proxy", "smoothtool", "wrk", "bench", "/bin/true", "idle", "other"}
		fmt.Fprintf(&b, " *bench* is the loop's own work (it starts smoothtool) and the probe. *Extra* is what a request costs "+
			"beyond %s; *smoothserve's part* is what smoothserve (*proxy*) and smoothtool add to it; the last column is "+
			"the req/s ratio the run would have had without that part: the cost of the rest of the loop alone "+
			"(for a restart, the replacements are fresh processes of the service).", t.base)
	}
	b.WriteString("\n\n")
	for _, c := range cols {
		if c == "proxy" && t.cycles {
			c = "smoothserve"
		}
		head = append(head, c)
	}
	head = append(head, "total")
	if t.cycles {
		head = append(head, "extra", "smoothserve's part of the extra", "req/s ÷ "+t.base+" without it")
	} else {
		head = append(head, "proxy ÷ "+t.base+"'s")
	}
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	for _, s := range t.rows {
		c := t.cpu[s.name]
		if c == nil || c.requests == 0 {
			continue
		}
		cells := []string{s.name, fmt.Sprintf("%.2f", base.total()/c.total())}
		shown := 0.0
		for _, r := range cols {
			v := c.perRequest(r)
			if r == "other" {
				v = c.total() - shown // and the roles this table has no column for
			}
			shown += v
			cells = append(cells, fmt.Sprintf("%.1f", v))
		}
		cells = append(cells, fmt.Sprintf("%.1f", c.total()))
		if !t.cycles {
			cells = append(cells, ratio(c.perRequest("proxy"), base.perRequest("proxy")))
		} else if extra, ours := c.total()-base.total(), c.ours()-base.ours(); s.name == t.base || extra <= 0 {
			cells = append(cells, fmt.Sprintf("%+.1f", extra), "–", "–")
		} else {
			cells = append(cells, fmt.Sprintf("%+.1f", extra), fmt.Sprintf("%.0f%%", 100*ours/extra), fmt.Sprintf("%.2f", base.total()/(c.total()-ours)))
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	return b.String()
}

// ours is the µs per request of smoothserve's processes and smoothtool.
func (c *cpuCount) ours() float64 {
	return c.perRequest("proxy") + c.perRequest("smoothtool")
}
