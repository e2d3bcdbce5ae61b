package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// This file answers where a measured run's CPU goes, by process: which
// proxy takes the least CPU per request, and, for the restart-cost runs,
// what part of a loop's cost is smoothserve's. A loop's throughput ratio
// alone cannot tell that from the instances' cost (a restart's replacements
// are fresh processes of the service) and the machine's. wrk runs under
// `perf record -a`, which samples every CPU for exactly as long as wrk runs,
// and the samples are counted by process name.

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
	"h2load":      "wrk", // the load generator of the HTTP/2 rows
	"sidebyside":  "bench",
	"true":        "/bin/true",
	"swapper":     "idle",
}

// roles are every role, so that totals count every sample.
var roles = []string{"instances", "proxy", "smoothtool", "wrk", "bench", "/bin/true", "idle", "other"}

// perfAvailable reports whether BENCH_CPU asks for the CPU tables (unset:
// whenever perf is installed and may sample every CPU), or why not.
func perfAvailable() (bool, error) {
	want := os.Getenv("BENCH_CPU")
	switch want {
	case "0":
		return false, nil
	case "", "1":
	default:
		return false, fmt.Errorf("BENCH_CPU=%q: want 0 or 1", want)
	}
	err := tryPerf()
	switch {
	case err == nil:
		return true, nil
	case want == "1":
		return false, fmt.Errorf("BENCH_CPU=1: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: no tables of where the CPU goes: %v\n", err)
	return false, nil
}

// tryPerf records a moment of every CPU, as the measured runs will.
func tryPerf() error {
	if _, err := exec.LookPath("perf"); err != nil {
		return errors.New("perf is not installed (Debian: linux-perf; bench/install-deps.sh installs it)")
	}
	f, err := os.CreateTemp("", "smoothserve-bench-perf-")
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(f.Name())
	args := append(perfRecord(f.Name()), "true")
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s (perf_event_paranoid, or not root?)", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// perfRecord is the command that runs the words after it under perf,
// sampling every CPU into file. cpu-clock, not the default cycles: on a
// machine with hardware counters, an idle CPU would give next to no cycles
// samples, and the columns would no longer add up to the cores' time (a
// CPU deep in idle may still skip a cpu-clock sample: idle is a lower
// bound, 1-5% of the time short in the loaded runs measured). No
// build IDs (-B): perf ends as soon as its workload does, and the tables
// need process names only.
func perfRecord(file string) []string {
	return []string{"perf", "record", "-a", "-q", "-B", "-e", "cpu-clock", "-F", strconv.Itoa(perfHz), "-o", file, "--"}
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

// runWrkCounted is runWrk, under perf when b.perf. count returns what perf
// counted; call it once the run's loop and probe have stopped, since perf
// report takes a while. A perf that fails costs the count, not the run.
func (b *bench) runWrkCounted(ctx context.Context, url string, w workload) (r wrkResult, count func() cpuCount, err error) {
	if !b.perf {
		r, err = runWrk(ctx, url, w, b.duration)
		return r, func() cpuCount { return cpuCount{} }, err
	}
	file := filepath.Join(b.dir, "perf.data")
	r, err = runWrkUnder(ctx, perfRecord(file), url, w, b.duration)
	return r, func() cpuCount {
		defer os.Remove(file)
		if err != nil {
			return cpuCount{}
		}
		samples, err := perfReport(ctx, file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: CPU by process not counted: %v\n", err)
			return cpuCount{}
		}
		return cpuCount{samples: samples, requests: r.requests}
	}, err
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

// perfReport counts the samples in file by role.
func perfReport(ctx context.Context, file string) (map[string]int64, error) {
	rep, err := exec.CommandContext(ctx, "perf", "report", "-i", file, "--sort", "comm", "--stdio", "-n", "-q").Output()
	if err != nil {
		return nil, fmt.Errorf("perf report -i %s: %w", file, err)
	}
	return parsePerfComms(string(rep))
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
	client := cmp.Or(t.client, "wrk")
	var b strings.Builder
	fmt.Fprintf(&b, "#### Where the CPU goes: µs of CPU per request, by process\n\n"+
		"`perf record -a -e cpu-clock -F %d` around each measured %s run above, samples counted by process name and divided by "+
		"the requests %s counted: the columns add up to about the %d cores' time per request (the inverse of throughput, "+
		"pooled over the rounds). *proxy* is the proxy measured; *other* is the kernel's threads and the rest.", perfHz, client, client, runtime.NumCPU())
	cols := []string{"instances", "proxy", "wrk", "bench", "idle", "other"}
	head := []string{"", "req/s ÷ " + t.base}
	if t.cycles {
		cols = []string{"instances", "proxy", "smoothtool", "wrk", "bench", "/bin/true", "idle", "other"}
		fmt.Fprintf(&b, " *bench* is the loop's own work (it starts smoothtool) and the probe. *Extra* is what a request costs "+
			"beyond %s; *smoothserve's part* is what smoothserve (*proxy*) and smoothtool add to it (for an extra of at least 5%%); the last column is "+
			"the req/s ratio the run would have had without that part: the cost of the rest of the loop alone "+
			"(for a restart, the replacements are fresh processes of the service); *per cycle* is that part in ms of CPU "+
			"per restart or upgrade (the loop's cycles pooled over the rounds, as the requests are).", t.base)
	}
	b.WriteString("\n\n")
	for _, c := range cols {
		if c == "proxy" && t.cycles {
			c = "smoothserve"
		}
		if c == "wrk" {
			c = client
		}
		head = append(head, c)
	}
	head = append(head, "total")
	if t.cycles {
		head = append(head, "extra", "smoothserve's part of the extra", "req/s ÷ "+t.base+" without it", "smoothserve's part per cycle")
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
		} else if extra, ours := c.total()-base.total(), c.ours()-base.ours(); extra < minExtra*base.total() || ours <= 0 {
			// Too little added to split (the base row adds nothing), or
			// nothing of it smoothserve's (a /bin/true loop takes CPU from
			// smoothserve too).
			cells = append(cells, fmt.Sprintf("%+.1f", extra), "–", "–", "–")
		} else {
			perCycle := "–"
			if s.cycles > 0 {
				// µs per request, times the requests, over the cycles: ms of
				// CPU that each restart or upgrade cost smoothserve.
				perCycle = fmt.Sprintf("%.1f ms", ours*float64(c.requests)/float64(s.cycles)/1000)
			}
			cells = append(cells, fmt.Sprintf("%+.1f", extra), fmt.Sprintf("%.0f%%", 100*ours/extra), fmt.Sprintf("%.2f", base.total()/(c.total()-ours)), perCycle)
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	return b.String()
}

// minExtra is the least extra cost, as a part of the base row's, that the
// restart-cost table splits: below it (a run within 5% of steady state's
// throughput) the split is mostly noise, and can show smoothserve's part
// as 250% of an extra of 0.1 µs.
const minExtra = 0.05

// ours is the µs per request of smoothserve's processes and smoothtool.
func (c *cpuCount) ours() float64 {
	return c.perRequest("proxy") + c.perRequest("smoothtool")
}
