package main

import (
	"fmt"
	"strings"
	"time"
)

// The restart-cost table against the targets: while restarts or
// upgrades run paced (one a second), throughput at least 0.9 of steady
// state and a p99 at most twice its; back to back, no error and a p99 at
// most twice steady state's; and smoothserve's own CPU for one restart at
// most 10 ms, for one upgrade at most 12 ms.

const (
	pacedThroughputTarget = 0.9
	p99Target             = 2.0
	restartCPUTarget      = 10 * time.Millisecond
	upgradeCPUTarget      = 12 * time.Millisecond
)

// A target is one line of the targets table.
type target struct {
	what, measured, want string
	met                  bool
	known                bool // measured; otherwise no verdict
}

// restartTargets is the markdown of the targets table for the restart
// cost table t, whose rows are restartModes' and whose base is steady
// state.
func restartTargets(t *table) string {
	base := t.find(t.base)
	if base == nil || len(base.runs) == 0 {
		return ""
	}
	var ts []target
	for _, name := range []string{"restart loop, 1 per second", "upgrade loop, 1 per second"} {
		if s := t.find(name); s != nil && len(s.runs) > 0 {
			got := s.rps() / base.rps()
			ts = append(ts, target{name + ": req/s ÷ steady", fmt.Sprintf("%.2f", got), fmt.Sprintf("≥ %.1f", pacedThroughputTarget), got >= pacedThroughputTarget, true},
				p99Line(s, base))
		}
	}
	for _, name := range []string{"restart loop, back to back", "upgrade loop, back to back"} {
		if s := t.find(name); s != nil && len(s.runs) > 0 {
			errs := s.total().errors()
			ts = append(ts, target{name + ": errors (wrk's + failed probe requests)", fmt.Sprintf("%d + %d", errs, s.probe.failed), "0",
				errs == 0 && s.probe.failed == 0, true}, p99Line(s, base))
		}
	}
	ts = append(ts,
		cpuLine(t, "restart loop, back to back", "restart", restartCPUTarget),
		cpuLine(t, "upgrade loop, back to back", "upgrade", upgradeCPUTarget))
	for _, q := range t.quiet {
		want := restartCPUTarget
		if q.name == "upgrade" {
			want = upgradeCPUTarget
		}
		ts = append(ts, target{
			what:     fmt.Sprintf("smoothserve's CPU per %s, without load (%d back to back)", q.name, q.cycles),
			measured: fmt.Sprintf("%.1f ms (and smoothtool %.1f, the instances %.1f)", ms(q.daemons), ms(q.tool), ms(q.instance)),
			want:     fmt.Sprintf("≤ %.0f ms", ms(want)),
			met:      q.daemons <= want, known: true,
		})
	}
	var b strings.Builder
	b.WriteString("#### Against the issue's targets\n\n" +
		"Ratios of the medians above. smoothserve's CPU per restart or upgrade: what its processes (the daemons) and smoothtool " +
		"took in the back-to-back loop beyond steady state, per request (perf, the table above), times the requests, over the cycles; " +
		"that counts the request path's loss of efficiency while the loop's processes take the cores (the /bin/true loop has it too). " +
		"*Without load*: the daemons' own CPU (perf, by process) over that many cycles back to back with nothing else asked of smoothserve, " +
		"smoothtool's and the instances' shown beside it.\n\n" +
		"| | measured | target | |\n| --- | --- | --- | --- |\n")
	for _, l := range ts {
		verdict := "–"
		switch {
		case l.known && l.met:
			verdict = "met"
		case l.known:
			verdict = "**not met**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", l.what, l.measured, l.want, verdict)
	}
	return b.String()
}

func p99Line(s, base *series) target {
	got := float64(s.p99()) / float64(base.p99())
	return target{s.name + ": p99 ÷ steady", fmt.Sprintf("%.2f", got), fmt.Sprintf("≤ %.0f", p99Target), got <= p99Target, base.p99() > 0}
}

// cpuLine is smoothserve's CPU per cycle in row name against want.
func cpuLine(t *table, name, cycle string, want time.Duration) target {
	l := target{what: fmt.Sprintf("smoothserve's CPU per %s (%s)", cycle, name), measured: "– (no perf)", want: fmt.Sprintf("≤ %.0f ms", ms(want))}
	daemons, tool, ok := cpuPerCycle(t, name)
	if !ok {
		if t.cpu != nil {
			l.measured = "– (no cycle, or no CPU counted)"
		}
		return l
	}
	total := daemons + tool
	l.measured = fmt.Sprintf("%.1f ms (daemons %.1f, smoothtool %.1f)", ms(total), ms(daemons), ms(tool))
	l.met, l.known = total <= want, true
	return l
}

// cpuPerCycle is what smoothserve's daemons and smoothtool took per cycle
// in row name beyond the base row's cost per request.
func cpuPerCycle(t *table, name string) (daemons, tool time.Duration, ok bool) {
	s, c, base := t.find(name), t.cpu[name], t.cpu[t.base]
	if s == nil || s.cycles == 0 || c == nil || c.requests == 0 || base == nil || base.requests == 0 {
		return 0, 0, false
	}
	per := func(role string) time.Duration {
		us := (c.perRequest(role) - base.perRequest(role)) * float64(c.requests) / float64(s.cycles)
		return time.Duration(us * float64(time.Microsecond))
	}
	return per("proxy"), per("smoothtool"), true
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
