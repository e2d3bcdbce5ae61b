package main

import (
	"fmt"
	"slices"
	"strings"
)

// idleTable is the markdown table of memory per idle connection: one row
// a proxy, the medians of its rounds at each of idleCounts, and ratios to
// the row base.
type idleTable struct {
	base  string
	kind  idleKind
	rows  []*idleRow
	notes []string
}

// idleRow is one proxy's measurements, by number of connections.
type idleRow struct {
	name    string
	samples map[int][]idleSample
}

func (t *idleTable) row(name string) *idleRow {
	for _, r := range t.rows {
		if r.name == name {
			return r
		}
	}
	r := &idleRow{name: name, samples: map[int][]idleSample{}}
	t.rows = append(t.rows, r)
	return r
}

// counts are the numbers of connections the table measures.
func (t *idleTable) counts() []int {
	if t.kind == idleTunnel || t.kind == idleStream {
		return tunnelCounts
	}
	return idleCounts
}

func (r *idleRow) add(s idleSample) { r.samples[s.conns] = append(r.samples[s.conns], s) }

// median is the median over the rounds at n connections of f.
func (r *idleRow) median(n int, f func(idleSample) float64) float64 {
	var v []float64
	for _, s := range r.samples[n] {
		v = append(v, f(s))
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// idlePerConn and busyPerConn are KiB per connection after idleWait and
// right after the last answer.
func idlePerConn(s idleSample) float64 { return s.perConn(s.idle) }
func busyPerConn(s idleSample) float64 { return s.perConn(s.busy) }

func (t *idleTable) markdown() string {
	var b strings.Builder
	counts := t.counts()
	most := counts[len(counts)-1]
	title, to, what := "Memory per idle keep-alive connection", "http://127.0.0.1:PORT,", "GET / on each, answer read"
	switch t.kind {
	case idleTLS:
		title, to = "Memory per idle keep-alive connection over TLS", "127.0.0.1:TLSPORT, each with a full TLS 1.3 handshake "+
			"(SNI and Host localhost, X25519, ALPN http/1.1, no session cache),"
	case idleH2:
		title, to, what = "Memory per idle HTTP/2 connection", "127.0.0.1:TLSPORT, each with a full TLS 1.3 handshake "+
			"(SNI and Host localhost, X25519, ALPN h2, no session cache),", "GET / on stream 1, answer read and both sides' "+
			"SETTINGS acknowledged"
	case idleTunnel:
		title, what = "Memory per quiet WebSocket", "a WebSocket opened on each (GET /ws, the demo's echo: a 101), "+
			"one text message echoed"
	case idleStream:
		title, what = "Memory per quiet event stream", "GET "+streamPath+" on each (the demo's server-sent events, "+
			"chunked), the head and first event read, the next a minute away"
	}
	fmt.Fprintf(&b, "### %s\n\n"+
		"`N connections from the bench to %s %d at a time, %s, then left open; "+
		"RSS of the proxy's processes before, right after the last answer and after %s idle`\n\n", title, to, idleParallel, what, idleWait)
	quiet := "idle"
	if t.kind == idleTunnel || t.kind == idleStream {
		quiet = "quiet"
	}
	head := []string{""}
	for _, n := range counts {
		head = append(head, fmt.Sprintf("KiB per connection, %s %s", thousands(n), quiet), "÷ "+t.base)
	}
	head = append(head,
		fmt.Sprintf("RSS before → with %s %s", thousands(most), quiet),
		fmt.Sprintf("KiB per connection right after the answers, %s", thousands(most)),
		"closed while idle", "failed", "open files (soft limit)",
		fmt.Sprintf("KiB per connection per round, %s", thousands(most)))
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	base := t.row(t.base)
	for _, r := range t.rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(t.cells(r, base, most), " | "))
	}
	for _, r := range t.rows {
		for _, n := range counts {
			for _, s := range r.samples[n] {
				if s.firstErr != "" {
					fmt.Fprintf(&b, "\n- %s, %s: %d failed, the first: %s", r.name, thousands(n), s.failed, s.firstErr)
					break
				}
			}
		}
	}
	notes := append([]string{
		"KiB per connection: (RSS − RSS before) ÷ the connections held, RSS from /proc/PID/statm summed over the proxy's processes " +
			"(nginx: master and workers); the median of the rounds. Each measurement has a proxy of its own, started for it, " +
			"warmed up with 64 connections of one request each (closed) a second before the RSS before",
		"not counted by any proxy's RSS: the kernel's socket buffers; nor, for nginx, its connection structures, " +
			"allocated for all of `worker_connections` at start (in its RSS before)",
		"a Go proxy's RSS holds garbage until its collector runs: counted, as an operator sees it",
	}, t.notes...)
	for _, n := range notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	b.WriteString("\n")
	return b.String()
}

// cells is row r of the table.
func (t *idleTable) cells(r, base *idleRow, most int) []string {
	cells := []string{r.name}
	for _, n := range t.counts() {
		v := r.median(n, idlePerConn)
		cells = append(cells, fmtPerConn(v, len(r.samples[n])), ratio(v, base.median(n, idlePerConn)))
	}
	var rounds []string
	var closed, failed, fds int
	for _, s := range r.samples[most] {
		rounds = append(rounds, fmt.Sprintf("%.2f", idlePerConn(s)))
	}
	for _, n := range t.counts() {
		for _, s := range r.samples[n] {
			closed += s.closed
			failed += s.failed
			if fds == 0 || s.fdLimit < fds {
				fds = s.fdLimit
			}
		}
	}
	before := r.median(most, func(s idleSample) float64 { return float64(s.before) })
	idle := r.median(most, func(s idleSample) float64 { return float64(s.idle) })
	return append(cells,
		fmtKiB(int64(before))+" → "+fmtKiB(int64(idle)),
		fmtPerConn(r.median(most, busyPerConn), len(r.samples[most])),
		fmtCount(closed), fmtCount(failed), fmt.Sprint(fds),
		strings.Join(rounds, " / "))
}

// fmtPerConn is KiB per connection, "?" if nothing was measured.
func fmtPerConn(v float64, samples int) string {
	if samples == 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", v)
}

// fmtCount is "0", or n in bold.
func fmtCount(n int) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("**%d**", n)
}

// thousands writes n with a comma between thousands: 10,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
