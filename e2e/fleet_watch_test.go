package e2e

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// fleetWatch polls, for the length of a rollout, each host's /health
// (every 50 ms, with the daemon its pid file names then) and HAProxy's
// view of each host (every 100 ms), and keeps what it saw as runs of equal
// samples.
//
// Ownership: mu guards health and lb, written by the polling goroutines;
// stop ends them (closing quit) and waits for them.
type fleetWatch struct {
	began time.Time
	quit  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	health map[string][]healthRun // by host name
	lb     map[string][]lbRun     // by server name
}

// healthRun is a stretch of equal /health answers of one daemon.
type healthRun struct {
	code     int    // 200, 503; 0: no answer
	why      string // the last unanswered poll's error
	daemon   int    // pid of the daemon its pid file named
	from, to time.Duration
	n        int
}

// lbRun is a stretch of one HAProxy status of a server ("UP", "DOWN 1/2"…).
type lbRun struct {
	status   string
	from, to time.Duration
	n        int
}

func (f *fleet) watch(lb *haproxyLB) *fleetWatch {
	w := &fleetWatch{began: time.Now(), quit: make(chan struct{}), health: map[string][]healthRun{}, lb: map[string][]lbRun{}}
	for _, h := range f.hosts {
		w.wg.Go(func() {
			for w.wait(50 * time.Millisecond) {
				code, err := h.health()
				w.addHealth(h.name, code, err, h.daemonPid())
			}
		})
	}
	w.wg.Go(func() {
		for w.wait(100 * time.Millisecond) {
			st, err := lb.stats()
			for _, h := range f.hosts {
				status := "no stats"
				if err == nil {
					status = st[h.name]["status"]
				}
				w.addLB(h.name, status)
			}
		}
	})
	return w
}

// wait sleeps d and reports whether to poll again.
func (w *fleetWatch) wait(d time.Duration) bool {
	select {
	case <-w.quit:
		return false
	case <-time.After(d):
		return true
	}
}

func (w *fleetWatch) addHealth(host string, code int, err error, daemon int) {
	at := time.Since(w.began)
	why := ""
	if err != nil {
		why = err.Error()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	runs := w.health[host]
	if n := len(runs); n > 0 && runs[n-1].code == code && runs[n-1].daemon == daemon {
		runs[n-1].to = at
		runs[n-1].n++
		runs[n-1].why = why
		return
	}
	w.health[host] = append(runs, healthRun{code: code, why: why, daemon: daemon, from: at, to: at, n: 1})
}

func (w *fleetWatch) addLB(server, status string) {
	at := time.Since(w.began)
	w.mu.Lock()
	defer w.mu.Unlock()
	runs := w.lb[server]
	if n := len(runs); n > 0 && runs[n-1].status == status {
		runs[n-1].to = at
		runs[n-1].n++
		return
	}
	w.lb[server] = append(runs, lbRun{status: status, from: at, to: at, n: 1})
}

// stop ends the polling; what was seen is final then.
func (w *fleetWatch) stop() {
	close(w.quit)
	w.wg.Wait()
}

// healthCodes is the host's /health answers with repeats folded
// (200 503 200), whichever daemon gave them.
func (w *fleetWatch) healthCodes(host string) []int {
	var codes []int
	for _, r := range w.health[host] {
		if len(codes) == 0 || codes[len(codes)-1] != r.code {
			codes = append(codes, r.code)
		}
	}
	return codes
}

// drained is the host's 503 window: when /health first and last answered
// 503, and the daemons that answered it then, in order.
func (w *fleetWatch) drained(host string) (from, to time.Duration, daemons []int) {
	seen := false
	for _, r := range w.health[host] {
		if r.code != 503 {
			continue
		}
		if !seen {
			from, seen = r.from, true
		}
		to = r.to
		if len(daemons) == 0 || daemons[len(daemons)-1] != r.daemon {
			daemons = append(daemons, r.daemon)
		}
	}
	return from, to, daemons
}

// firstLB is when HAProxy first showed the server in a status beginning
// with prefix, after at; ok is false if it never did.
func (w *fleetWatch) firstLB(server, prefix string, after time.Duration) (time.Duration, bool) {
	for _, r := range w.lb[server] {
		if r.to >= after && strings.HasPrefix(r.status, prefix) {
			return max(r.from, after), true
		}
	}
	return 0, false
}

// lastLB is the server's last status in HAProxy.
func (w *fleetWatch) lastLB(server string) string {
	runs := w.lb[server]
	if len(runs) == 0 {
		return ""
	}
	return runs[len(runs)-1].status
}

// describe is what the watch saw of a host, for the log.
func (w *fleetWatch) describe(host string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "/health:")
	for _, r := range w.health[host] {
		fmt.Fprintf(&b, " %d(pid %d) %v–%v×%d;", r.code, r.daemon, fleetRound(r.from), fleetRound(r.to), r.n)
		if r.why != "" {
			fmt.Fprintf(&b, " (no answer: %s)", r.why)
		}
	}
	fmt.Fprintf(&b, " haproxy:")
	for _, r := range w.lb[host] {
		fmt.Fprintf(&b, " %s %v–%v;", r.status, fleetRound(r.from), fleetRound(r.to))
	}
	return b.String()
}

func fleetRound(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
