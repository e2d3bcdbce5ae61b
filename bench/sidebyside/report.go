package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// series is every round of one proxy (or one smoothserve mode) in one table.
type series struct {
	name    string
	runs    []wrkResult
	peakKiB int64 // the highest summed VmHWM of any run
	cycles  int   // restarts or upgrades completed during the runs
	probe   probeResult
	notes   []string
	// extra are the cells of the table's extra columns, by column.
	extra map[string]string
}

func (s *series) addProbe(p probeResult) {
	s.probe.requests += p.requests
	s.probe.failed += p.failed
	s.probe.slowest = max(s.probe.slowest, p.slowest)
	if p.firstFailure != "" {
		s.note("probe: " + p.firstFailure)
	}
}

// note keeps the first few distinct notes.
func (s *series) note(n string) {
	if len(s.notes) < 5 && !slices.Contains(s.notes, n) {
		s.notes = append(s.notes, n)
	}
}

func (s *series) add(r wrkResult, peakKiB int64) {
	s.runs = append(s.runs, r)
	s.peakKiB = max(s.peakKiB, peakKiB)
}

func (s *series) rps() float64 {
	return median(s.runs, func(r wrkResult) float64 { return r.rps })
}

func (s *series) p50() time.Duration {
	return time.Duration(median(s.runs, func(r wrkResult) float64 { return float64(r.p50) }))
}

func (s *series) p99() time.Duration {
	return time.Duration(median(s.runs, func(r wrkResult) float64 { return float64(r.p99) }))
}

// total adds up the errors of every run.
func (s *series) total() wrkResult {
	var t wrkResult
	for _, r := range s.runs {
		t.requests += r.requests
		t.connect += r.connect
		t.read += r.read
		t.write += r.write
		t.timeout += r.timeout
		t.non2xx += r.non2xx
	}
	return t
}

func median(runs []wrkResult, f func(wrkResult) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// table is one markdown table: rows compared with the row named base.
type table struct {
	title   string
	command string // the wrk command line, for the reader
	base    string // the row the ratios divide by
	rows    []*series
	// cycles adds a column of restarts or upgrades done during the runs.
	cycles bool
	// probe adds the columns of the probe's requests (see probe).
	probe bool
	// cpu is what perf counted in each row's runs, by row name; nil without
	// perf. markdown adds a table of it (cpuTable).
	cpu map[string]*cpuCount
	// quiet is what a restart and an upgrade took without load (the
	// restart-cost table; quietcycles.go).
	quiet []quietCycle
	// client is the load generator's name in the CPU table, "" for wrk.
	client string
	// notes are said under the table.
	notes []string
	// pairs are rows compared two by two, off and on (accesslog.go):
	// markdown adds a table of their ratios (pairTable).
	pairs []*logPair
	// alsoBases are more rows the throughput is compared with, a column
	// each after the ratios to base.
	alsoBases []string
	// extra are more columns, before the errors, filled in from each
	// row's extra cells ("–" where a row has none).
	extra []string
	// after is more markdown, said after the table and its notes
	// (restart targets: targets.go).
	after func(*table) string
}

// A markdowner is a part of the report: a table, or the idle memory one.
type markdowner interface{ markdown() string }

// find is the row named name, or nil.
func (t *table) find(name string) *series {
	for _, s := range t.rows {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (t *table) row(name string) *series {
	if s := t.find(name); s != nil {
		return s
	}
	s := &series{name: name}
	t.rows = append(t.rows, s)
	return s
}

func (t *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n`%s`\n\n", t.title, t.command)
	head := t.head()
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	for _, s := range t.rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(t.cells(s), " | "))
	}
	for _, s := range t.rows {
		for _, n := range s.notes {
			fmt.Fprintf(&b, "\n- %s: %s", s.name, n)
		}
	}
	for _, n := range t.notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	b.WriteString("\n")
	if len(t.pairs) > 0 {
		b.WriteString("\n" + pairTable(t))
	}
	if t.cpu != nil {
		b.WriteString("\n" + cpuTable(t) + "\n")
	}
	if t.after != nil {
		if more := t.after(t); more != "" {
			b.WriteString("\n" + more)
		}
	}
	return b.String()
}

// head is the table's header row; cells, a row's cells under it.
func (t *table) head() []string {
	head := []string{"", "req/s (median)", "p50", "p99", "req/s ÷ " + t.base, "p99 ÷ " + t.base}
	for _, a := range t.alsoBases {
		head = append(head, "req/s ÷ "+a)
	}
	head = append(head, "peak RSS")
	head = append(head, t.extra...)
	if t.cycles {
		head = append(head, "cycles")
	}
	head = append(head, "errors")
	if t.probe {
		head = append(head, "probe failed", "probe slowest")
	}
	return append(head, "req/s per round")
}

func (t *table) cells(s *series) []string {
	base := t.row(t.base)
	cells := []string{
		s.name,
		fmt.Sprintf("%.0f", s.rps()),
		fmtLatency(s.p50()),
		fmtLatency(s.p99()),
		ratio(s.rps(), base.rps()),
		ratio(float64(s.p99()), float64(base.p99())),
	}
	for _, a := range t.alsoBases {
		other := 0.0
		if o := t.find(a); o != nil {
			other = o.rps()
		}
		cells = append(cells, ratio(s.rps(), other))
	}
	cells = append(cells, fmtKiB(s.peakKiB))
	for _, c := range t.extra {
		cells = append(cells, cmp.Or(s.extra[c], "–"))
	}
	if t.cycles {
		cells = append(cells, fmt.Sprint(s.cycles))
	}
	cells = append(cells, fmtErrors(s.total()))
	if t.probe {
		cells = append(cells, fmtProbeFailed(s.probe), fmtLatency(s.probe.slowest))
	}
	return append(cells, fmtRounds(s.runs))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func fmtLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func fmtKiB(kib int64) string {
	if kib == 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// fmtErrors is "0", or the total and its kinds.
func fmtErrors(t wrkResult) string {
	if t.errors() == 0 {
		return "0"
	}
	var kinds []string
	for _, k := range []struct {
		name string
		n    int64
	}{{"connect", t.connect}, {"read", t.read}, {"write", t.write}, {"timeout", t.timeout}, {"non-2xx", t.non2xx}} {
		if k.n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k.name, k.n))
		}
	}
	return fmt.Sprintf("**%d** (%s)", t.errors(), strings.Join(kinds, ", "))
}

func fmtRounds(runs []wrkResult) string {
	var s []string
	for _, r := range runs {
		s = append(s, fmt.Sprintf("%.0f", r.rps))
	}
	return strings.Join(s, " / ")
}

func fmtProbeFailed(p probeResult) string {
	if p.failed == 0 {
		return fmt.Sprintf("0 of %d", p.requests)
	}
	return fmt.Sprintf("**%d** of %d", p.failed, p.requests)
}
