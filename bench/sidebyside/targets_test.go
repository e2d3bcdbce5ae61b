package main

import (
	"strings"
	"testing"
	"time"
)

// The restart-cost table's targets: each paced loop's throughput and p99
// against steady state, each back-to-back loop's errors and p99, and
// smoothserve's CPU per restart and upgrade from perf's counts.
func TestRestartTargets(t *testing.T) {
	tb := &table{base: "steady state", cycles: true, probe: true, after: restartTargets}
	run := func(rps float64, p99 time.Duration) wrkResult {
		return wrkResult{rps: rps, p99: p99, requests: 1e6}
	}
	rows := []struct {
		name   string
		r      wrkResult
		cycles int
		failed int
	}{
		{"steady state", run(20000, 4*time.Millisecond), 0, 0},
		{"restart loop, back to back", run(17000, 6*time.Millisecond), 200, 0},
		{"restart loop, 1 per second", run(19000, 5*time.Millisecond), 10, 0},
		{"upgrade loop, back to back", run(14000, 9*time.Millisecond), 100, 2},
		{"upgrade loop, 1 per second", run(17000, 4*time.Millisecond), 10, 0},
	}
	for _, r := range rows {
		s := tb.row(r.name)
		s.add(r.r, 0)
		s.cycles = r.cycles
		s.probe.failed = r.failed
	}
	rows[3].r.read = 3
	tb.row(rows[3].name).runs[0].read = 3
	per := func(us int64) int64 { return us * perfHz } // over 1e6 requests: us µs per request
	tb.addCPU("steady state", cpuCount{requests: 1e6, samples: map[string]int64{"proxy": per(10)}})
	// 2 µs a request more in the daemons, 1 in smoothtool, over 1e6
	// requests and 200 restarts: 10 + 5 ms a restart.
	tb.addCPU("restart loop, back to back", cpuCount{requests: 1e6, samples: map[string]int64{"proxy": per(12), "smoothtool": per(1)}})
	// 1 µs more: 10 ms an upgrade.
	tb.addCPU("upgrade loop, back to back", cpuCount{requests: 1e6, samples: map[string]int64{"proxy": per(11)}})
	tb.quiet = []quietCycle{
		{name: "restart", cycles: 20, daemons: 8300 * time.Microsecond, tool: 6100 * time.Microsecond, instance: 14800 * time.Microsecond},
		{name: "upgrade", cycles: 20, daemons: 15 * time.Millisecond, tool: 6 * time.Millisecond, instance: time.Millisecond},
	}
	md := tb.markdown()
	for _, want := range []string{
		"#### Against the issue's targets",
		"| smoothserve's CPU per restart, without load (20 back to back) | 8.3 ms (and smoothtool 6.1, the instances 14.8) | ≤ 10 ms | met |",
		"| smoothserve's CPU per upgrade, without load (20 back to back) | 15.0 ms (and smoothtool 6.0, the instances 1.0) | ≤ 12 ms | **not met** |",
		"| restart loop, 1 per second: req/s ÷ steady | 0.95 | ≥ 0.9 | met |",
		"| restart loop, 1 per second: p99 ÷ steady | 1.25 | ≤ 2 | met |",
		"| upgrade loop, 1 per second: req/s ÷ steady | 0.85 | ≥ 0.9 | **not met** |",
		"| upgrade loop, 1 per second: p99 ÷ steady | 1.00 | ≤ 2 | met |",
		"| restart loop, back to back: errors (wrk's + failed probe requests) | 0 + 0 | 0 | met |",
		"| restart loop, back to back: p99 ÷ steady | 1.50 | ≤ 2 | met |",
		"| upgrade loop, back to back: errors (wrk's + failed probe requests) | 3 + 2 | 0 | **not met** |",
		"| upgrade loop, back to back: p99 ÷ steady | 2.25 | ≤ 2 | **not met** |",
		"| smoothserve's CPU per restart (restart loop, back to back) | 15.0 ms (daemons 10.0, smoothtool 5.0) | ≤ 10 ms | **not met** |",
		"| smoothserve's CPU per upgrade (upgrade loop, back to back) | 10.0 ms (daemons 10.0, smoothtool 0.0) | ≤ 12 ms | met |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks\n%s\nin\n%s", want, md)
		}
	}

	tb.cpu = nil
	if md := tb.markdown(); !strings.Contains(md, "| smoothserve's CPU per restart (restart loop, back to back) | – (no perf) | ≤ 10 ms | – |") {
		t.Errorf("without perf: no verdict on CPU wanted in\n%s", md)
	}
}
