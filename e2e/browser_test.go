package e2e

import (
	"context"
	"fmt"
	"smoothserve/internal/browsertest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// wsRecord is one WebSocket of the demo's page /ws.html, as its script
// keeps it in window.wsLog (examples/demo/page.go).
type wsRecord struct {
	State    string    `json:"state"` // connecting, open, closed
	Sent     int       `json:"sent"`
	Echoes   []string  `json:"echoes"`
	Times    []float64 `json:"times"` // ms since the page loaded, one per echo
	Code     *int      `json:"code"`  // the close event's, nil while open
	Reason   string    `json:"reason"`
	WasClean *bool     `json:"wasClean"`
	Errors   int       `json:"errors"`
}

func (r wsRecord) String() string {
	last := "none"
	if n := len(r.Echoes); n > 0 {
		last = strconv.Quote(r.Echoes[n-1])
	}
	s := fmt.Sprintf("%s, sent %d, %d echoes (last %s), %d error events", r.State, r.Sent, len(r.Echoes), last, r.Errors)
	if r.Code != nil {
		s += fmt.Sprintf(", close code %d reason %q wasClean %v", *r.Code, r.Reason, r.WasClean != nil && *r.WasClean)
	}
	return s
}

// orderProblem says where the echoes are not "echo: n=1", "echo: n=2", ...
// in order, none lost or repeated; "" if they are.
func (r wsRecord) orderProblem() string {
	for i, got := range r.Echoes {
		if want := fmt.Sprintf("echo: n=%d", i+1); got != want {
			return fmt.Sprintf("echo #%d is %q, want %q (the ones before: %q)", i+1, got, want, r.Echoes[max(0, i-3):i])
		}
	}
	return ""
}

// maxGap is the longest time between two echoes from index from on.
func (r wsRecord) maxGap(from int) time.Duration {
	var gap float64
	for i := max(from, 1); i < len(r.Times); i++ {
		gap = max(gap, r.Times[i]-r.Times[i-1])
	}
	return time.Duration(gap * float64(time.Millisecond))
}

// page is /ws.html open in a headless Chromium.
type page struct {
	t   *testing.T
	ctx context.Context
}

// openPage starts a headless Chromium (no sandbox: the tests run as root;
// its own profile folder), which lives at most for the given time, and
// loads url. The browser is stopped at the end of the test.
func openPage(t *testing.T, chromium, url string, lifetime time.Duration) *page {
	t.Helper()
	ctx := browsertest.Start(t, chromium, lifetime, "", "")
	p := &page{t: t, ctx: ctx}
	began := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("headless %s loading %s: %v", chromium, url, err)
	}
	t.Logf("chromium loaded %s in %v", url, time.Since(began).Round(time.Millisecond))
	return p
}

// eval evaluates a JavaScript expression in the page and returns its
// value.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluating %s in the page: %v", expr, err)
	}
	return v
}

// sockets is the page's wsLog: every WebSocket it opened, oldest first.
func (p *page) sockets() []wsRecord {
	p.t.Helper()
	return eval[[]wsRecord](p, "window.wsLog")
}

// waitFor polls WebSocket i of the page until ok says yes, and returns it;
// after within, it fails the test saying what it waited for.
func (p *page) waitFor(i int, what string, within time.Duration, ok func(wsRecord) bool) wsRecord {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		log := p.sockets()
		if i < len(log) && ok(log[i]) {
			return log[i]
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited %v for %s; the page's WebSockets: %v", within, what, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserWebSocketThroughRestartAndUpgrade: a browser page talking to
// the demo over a WebSocket through smoothserve. A rolling restart closes
// its WebSocket with the instance's own 1001 (not 1006, a cut connection),
// and the page's next WebSocket echoes on; a self-upgrade of smoothserve
// (SIGHUP) keeps that WebSocket open: every numbered message is echoed, in
// order, none lost or repeated, also once the old daemon has exited.
func TestBrowserWebSocketThroughRestartAndUpgrade(t *testing.T) {
	chromium := browsertest.Chromium(t)
	e := newEnv(t, 6)
	// The browser cannot set Host: the page is loaded, and its WebSocket
	// opened, with Host 127.0.0.1:<proxy port>.
	e.service("web", "127.0.0.1", 2, "")
	in := install(e)
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	p := openPage(t, chromium, "http://"+e.proxyAddr()+"/ws.html", 40*time.Second)
	p.waitFor(0, "5 echoes on the page's first WebSocket", 5*time.Second, func(r wsRecord) bool {
		return len(r.Echoes) >= 5 || r.State == "closed"
	})
	browserThroughRestart(t, in, p)
	browserThroughUpgrade(t, in, p)
	if n := len(p.sockets()); n != 2 {
		t.Errorf("the page opened %d WebSockets, want 2 (the first, and one after the restart)", n)
	}
}

// browserThroughRestart rolls the service while the page's first
// WebSocket is open, and opens its second one.
func browserThroughRestart(t *testing.T, in *installed, p *page) {
	t.Helper()
	began := time.Now()
	if code, out, errOut := in.run("restart", "web"); code != 0 {
		t.Fatalf("smoothtool restart web: exit %d\n%s%s", code, out, errOut)
	}
	took := time.Since(began)
	first := p.waitFor(0, "the first WebSocket to close after smoothtool restart", 5*time.Second, func(r wsRecord) bool {
		return r.State == "closed"
	})
	t.Logf("restart: %v; first WebSocket: %v", took.Round(time.Millisecond), first)
	if first.Code == nil || *first.Code != 1001 || first.Reason != "server restarting" {
		t.Fatalf("the first WebSocket after smoothtool restart: %v; want close code 1001 reason \"server restarting\", "+
			"the instance's own close frame at SIGTERM (1006 would be a cut connection)", first)
	}
	if prob := first.orderProblem(); prob != "" {
		t.Errorf("the first WebSocket's echoes before the restart: %s", prob)
	}
	if i := eval[int](p, "wsOpen()"); i != 1 {
		t.Fatalf("wsOpen() in the page returned %d, want 1", i)
	}
	p.waitFor(1, "5 echoes on a new WebSocket after the restart", 5*time.Second, func(r wsRecord) bool {
		return len(r.Echoes) >= 5 || r.State == "closed"
	})
}

// browserThroughUpgrade upgrades smoothserve (SIGHUP) while the page's
// second WebSocket is open, and checks it stays open and loses nothing.
func browserThroughUpgrade(t *testing.T, in *installed, p *page) {
	t.Helper()
	const ws = 1
	stillOpen := func(r wsRecord) bool { return r.State == "open" && r.Code == nil }
	before := p.waitFor(ws, "the second WebSocket open", time.Second, stillOpen)
	old := in.daemonPid()
	copyFile(t, bin.smoothserve, in.bin) // a new binary moved into place
	began := time.Now()
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP to smoothserve pid %d: %v", old, err)
	}
	newPid := in.daemonPid()
	for ; newPid == old || newPid == 0; newPid = in.daemonPid() {
		if time.Since(began) > 15*time.Second {
			t.Fatalf("upgrade (SIGHUP): the pid file still names %d after 15s; the page's WebSocket: %v", old, p.sockets()[ws])
		}
		time.Sleep(10 * time.Millisecond)
	}
	ready := time.Since(began)
	for alive(old) {
		if time.Since(began) > 10*time.Second {
			t.Fatalf("upgrade: the old smoothserve (pid %d) still runs 10s after SIGHUP (new pid %d ready after %v); the page's WebSocket: %v",
				old, newPid, ready.Round(time.Millisecond), p.sockets()[ws])
		}
		time.Sleep(20 * time.Millisecond)
	}
	exited := time.Since(began)
	atExit := p.sockets()[ws]
	if !stillOpen(atExit) {
		t.Fatalf("the WebSocket opened before the upgrade: %v once the old daemon had exited; want it still open (passed to the new daemon)", atExit)
	}
	after := p.waitFor(ws, "10 more echoes after the old daemon exited", 5*time.Second, func(r wsRecord) bool {
		return len(r.Echoes) >= len(atExit.Echoes)+10 || !stillOpen(r)
	})
	if !stillOpen(after) {
		t.Fatalf("the WebSocket opened before the upgrade: %v after the old daemon exited; want it open, echoing", after)
	}
	eval[chromedp.Void](p, fmt.Sprintf("wsStop(%d)", ws))
	final := p.waitFor(ws, "the echo of every message sent", 3*time.Second, func(r wsRecord) bool {
		return len(r.Echoes) >= r.Sent || !stillOpen(r)
	})
	t.Logf("upgrade %d → %d: ready after %v, old exited after %v; WebSocket: %d echoes before, %d when the old daemon exited, %v at the end; longest gap between echoes %v",
		old, newPid, ready.Round(time.Millisecond), exited.Round(time.Millisecond), len(before.Echoes), len(atExit.Echoes), final,
		final.maxGap(len(before.Echoes)).Round(time.Millisecond))
	switch {
	case !stillOpen(final):
		t.Fatalf("the WebSocket opened before the upgrade: %v; want it open", final)
	case len(final.Echoes) != final.Sent:
		t.Errorf("the WebSocket through the upgrade: %d messages sent, %d echoed; want every one echoed once", final.Sent, len(final.Echoes))
	}
	if prob := final.orderProblem(); prob != "" {
		t.Errorf("the WebSocket through the upgrade: %s", prob)
	}
}
