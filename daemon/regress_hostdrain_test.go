package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"smoothserve/control/api"
	"smoothserve/proxy"
	"smoothserve/upstream"
)

func reviewHost(t *testing.T, delay time.Duration) (*hostDrain, *proxy.Server) {
	t.Helper()
	px, err := proxy.New(proxy.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return newHostDrain(px, t.TempDir(), delay, slog.New(slog.NewTextHandler(io.Discard, nil))), px
}

// Regression (review): the host component's stop (and release) calls end, which
// closes the drain's stop channel but leaves the state draining; the
// control server answers until the very last component stops, so an
// undrain in that window closes stop a second time.
func TestUndrainAfterEndDoesNotPanic(t *testing.T) {
	h, _ := reviewHost(t, time.Hour)
	t.Cleanup(h.end)
	if _, err := h.Drain(context.Background(), false, 0); err != nil {
		t.Fatal(err)
	}
	h.setStopping() // the host component's stop: smoothserve stops...
	h.end()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Undrain after the host component stopped panics: %v", r)
		}
	}()
	h.Undrain() // ...and the operator undrains before the control server closes
}

// Regression (review): a drain --wait waits for the done channel of the drain it found;
// an undrain abandons that drain without closing it, so the waiter is never
// woken, not even when the host drains again and is drained.
func TestWaitEndsWhenUndrained(t *testing.T) {
	h, _ := reviewHost(t, 300*time.Millisecond)
	t.Cleanup(h.end)
	// Long: a waiter the undrain did not wake returns when it ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waited := make(chan error, 1)
	if _, err := h.Drain(ctx, false, 0); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := h.Drain(ctx, true, 0)
		waited <- err
	}()
	time.Sleep(50 * time.Millisecond)
	h.Undrain()
	if _, err := h.Drain(ctx, false, 0); err != nil { // drain again, quickly
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.Status().State != api.HostDrained && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := h.Status().State; st != api.HostDrained {
		t.Fatalf("second drain: %s, want drained", st)
	}
	select {
	case err := <-waited:
		t.Logf("the first drain --wait returned: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("drain --wait of the first drain still waits after an undrain, and after the host drained again (it returns only when its context ends)")
	}
}

// Regression (review): a drain kept across an upgrade records served0 when New
// restores it, before the previous process's counters arrive (goOnFrom →
// SetBase), so "served since the drain began" then counts every request
// the previous smoothserve ever answered.
func TestServedAfterUpgradeStartsOver(t *testing.T) {
	h, px := reviewHost(t, 0)
	t.Cleanup(h.end)
	b := fmt.Appendf(nil, `{"state":"drained","since":%q}`, time.Now().Add(-time.Minute).Format(time.RFC3339Nano))
	if err := os.WriteFile(h.file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	h.restore()
	buckets := make([]uint64, len(proxy.DurationBuckets)+1)
	for i := range buckets {
		buckets[i] = 1000
	}
	px.SetBase([]proxy.ServiceStats{{Service: "web", Buckets: buckets}}) // takeConnections → goOnFrom
	if st := h.Status(); st.Served != 0 {
		t.Fatalf("served since the drain began, right after an upgrade: %d, want 0 (the api says an upgrade starts the figures over)", st.Served)
	}
}

// Regression (review): the figures of a drain are "since the drain began", but the
// proxy's count of connections closed starts over only when the proxy
// begins to close them, DrainDelay later: until then a new drain shows the
// previous drain's count.
func TestClosedConnectionsOfANewDrain(t *testing.T) {
	h, px := reviewHost(t, 0)
	t.Cleanup(h.end)
	c := serveAndDial(t, px)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	time.Sleep(50 * time.Millisecond) // idle now
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := h.Drain(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Status().ClosedConnections == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("first drain: %+v, closed now %d", st, h.Status().ClosedConnections)
	if h.Status().ClosedConnections == 0 {
		t.Skip("the idle connection was not counted closed: cannot look at the second drain")
	}
	h.Undrain()
	h.delay = time.Hour // the second drain stays in its DrainDelay
	if _, err := h.Drain(ctx, false, 0); err != nil {
		t.Fatal(err)
	}
	if st := h.Status(); st.ClosedConnections != 0 {
		t.Fatalf("a new drain, still in its DrainDelay, shows %d connections closed, want 0: the count is the previous drain's", st.ClosedConnections)
	}
}

// Regression (review): the drain file keeps the state and when the drain began, not
// its --timeout nor that it timed out. A drain declared drained by its
// timeout with a request still in flight (a long poll, a stream: passed to
// the next smoothserve at an upgrade) comes back as draining after the
// upgrade, and stays draining until the request ends: status shows
// draining, and a drain --wait run again (the playbook's) blocks.
func TestDrainedByTimeoutStaysDrainedAcrossUpgrade(t *testing.T) {
	set := upstream.NewSet("web", 10*time.Second) // no instance: a request waits for one
	px, err := proxy.New(proxy.Options{}, []proxy.Route{{Port: 8080, Set: set}})
	if err != nil {
		t.Fatal(err)
	}
	c := serveAndDial(t, px)
	fmt.Fprintf(c, "GET /poll HTTP/1.1\r\nHost: web.test\r\n\r\n")
	deadline := time.Now().Add(2 * time.Second)
	for px.InFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if px.InFlight() == 0 {
		t.Fatal("no request in flight")
	}
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	old := newHostDrain(px, dir, 0, log)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := old.Drain(ctx, true, 200*time.Millisecond)
	if err != nil || st.State != api.HostDrained || !st.TimedOut {
		t.Fatalf("drain --wait --timeout 200ms: %+v %v, want drained, timed out", st, err)
	}
	old.end() // the upgrade: this process lets go...

	next := newHostDrain(px, dir, 0, log) // ...the next one restores it
	next.restore()
	t.Cleanup(next.end)
	time.Sleep(300 * time.Millisecond)
	if got := next.Status(); got.State != api.HostDrained {
		t.Fatalf("after an upgrade, a host drained by its timeout is %s (%+v), want still drained", got.State, got)
	}
}

// Regression (review): smoothtool's help says "--timeout D: the host is drained after D
// at the latest", but the deadline is looked at only once DrainDelay has
// passed: with DrainDelay 1s, drain --wait --timeout 100ms returns after 1s.
func TestTimeoutShorterThanDrainDelay(t *testing.T) {
	// DrainDelay far longer than the timeout, so that a loaded machine's
	// delays cannot be taken for waiting it out.
	h, _ := reviewHost(t, 10*time.Second)
	t.Cleanup(h.end)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	st, err := h.Drain(ctx, true, 100*time.Millisecond)
	if took := time.Since(began); err != nil || took > 2*time.Second {
		t.Fatalf("drain --wait --timeout 100ms took %v (%+v, %v), want about 100ms: drained after D at the latest", took.Round(time.Millisecond), st.State, err)
	}
}

// serveAndDial serves px's port 8080 on a listener of its own until the
// test ends, and returns a client connection to it.
func serveAndDial(t *testing.T, px *proxy.Server) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go px.Serve(ln, 8080)
	t.Cleanup(func() { px.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
