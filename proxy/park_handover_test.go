package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Parked connections at an upgrade: the passing process passes them as they
// are, and the taking one parks those with nothing read of their next
// request as they arrive (handover.go's arrive and passParked).

// parkedClients opens n connections to f, one request each, and waits
// until all are parked.
func parkedClients(t *testing.T, f *fixture, n int) []*client {
	t.Helper()
	cls := make([]*client, n)
	for i := range cls {
		cls[i] = dial(t, f.addr)
		cls[i].mustDo(get("x", "/"))
	}
	waitParked(t, f.srv, n)
	return cls
}

func TestPassedIdleConnectionsArriveParked(t *testing.T) {
	oldIn, newIn := startInstance(t, "old", nil), startInstance(t, "new", nil)
	old := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOf(t, "s", oldIn)})
	// It would park an idle connection of its own after a second.
	const idle = 1500 * time.Millisecond
	next := startProxy(t, Options{IdleTimeout: idle, parkAfter: time.Second}, Route{Port: 1, Set: setOf(t, "s", newIn)})
	cls := parkedClients(t, old, 40)

	var passed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := old.srv.PassConnections(ctx, passTo(next.srv, &passed)); err != nil {
		t.Fatalf("PassConnections: %v", err)
	}
	arrived := time.Now()
	if n := passed.Load(); n != int64(len(cls)) {
		t.Fatalf("passed %d, want %d", n, len(cls))
	}
	// Parked as they came, not after the taking process's parkAfter.
	if n := next.srv.parker.count(); n != len(cls) {
		t.Fatalf("parked in the taking process right after the pass: %d of %d", n, len(cls))
	}

	// Half ask: answered by the new process, the connection kept. All at
	// once: one after another, a loaded machine could take them past
	// IdleTimeout.
	asking, quiet := cls[:len(cls)/2], cls[len(cls)/2:]
	var wg sync.WaitGroup
	for i, cl := range asking {
		wg.Go(func() {
			resp, body, err := cl.do(get("x", "/"))
			if err != nil {
				t.Errorf("client %d after the pass: %v", i, err)
			} else if body != "new GET /" || resp.Close {
				t.Errorf("client %d after the pass: %q close=%v, want the new process's answer", i, body, resp.Close)
			}
		})
	}
	wg.Wait()
	// The others are closed at IdleTimeout, counted from their arrival.
	for _, cl := range quiet {
		expectClosed(t, cl, "a passed connection that stayed idle")
	}
	if d := time.Since(arrived); d < idle-50*time.Millisecond {
		t.Errorf("closed %v after arriving, before IdleTimeout %v", d, idle)
	}
	waitUntil(t, "every connection forgotten", func() bool { return next.srv.connCount() == 0 && next.srv.parker.count() == 0 })
}

func TestPassingParkedConnectionsTakesThemNotUp(t *testing.T) {
	oldIn, newIn := startInstance(t, "old", nil), startInstance(t, "new", nil)
	old := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOf(t, "s", oldIn)})
	next := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", newIn)})
	cls := parkedClients(t, old, 200)

	// A connection taken up to be passed would call the PassFunc from a
	// goroutine of its own, all at once; parked ones are passed one after
	// another, with nothing read.
	var passed, inFlight, most atomic.Int64
	pass := passTo(next.srv, &passed)
	slowPass := func(h *Handover) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if len(h.Buffered) != 0 {
			t.Errorf("a parked connection passed with %d bytes buffered", len(h.Buffered))
		}
		time.Sleep(time.Millisecond)
		return pass(h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := old.srv.PassConnections(ctx, slowPass); err != nil {
		t.Fatalf("PassConnections: %v", err)
	}
	if n := passed.Load(); n != int64(len(cls)) {
		t.Fatalf("passed %d, want %d", n, len(cls))
	}
	if m := most.Load(); m != 1 {
		t.Errorf("passes at once: %d, want 1 (parked connections taken up to be passed)", m)
	}
	for i, cl := range cls {
		if resp, body := cl.mustDo(get("x", "/")); body != "new GET /" || resp.Close {
			t.Fatalf("client %d after the pass: %q close=%v", i, body, resp.Close)
		}
	}
}

func TestParkedConnectionWhosePassingFailsIsServedHere(t *testing.T) {
	in := startInstance(t, "old", nil)
	old := startProxy(t, parkOpts(Options{ShutdownGrace: 2 * time.Second}), Route{Port: 1, Set: setOf(t, "s", in)})
	cls := parkedClients(t, old, 3)

	done := make(chan error, 1)
	go func() {
		done <- old.srv.PassConnections(context.Background(), func(*Handover) error { return errors.New("the new process is gone") })
	}()
	waitUntil(t, "the passes failed", func() bool { return old.srv.PassStats().Failed == int64(len(cls)) })
	// Within the grace each is answered here, and closed after.
	for i, cl := range cls {
		resp, body := cl.mustDo(get("x", "/"))
		if body != "old GET /" || !resp.Close {
			t.Errorf("client %d after its pass failed: %q close=%v, want an answer here with Connection: close", i, body, resp.Close)
		}
	}
	waitReturned(t, done, "PassConnections, once the connections were answered,")
}

// slowPassing is an old proxy with n parked clients, and a PassFunc to a
// new one that takes 5 ms a pass, counting its calls and its passes.
type slowPassing struct {
	old, next     *fixture
	cls           []*client
	passed, calls atomic.Int64
	pass          PassFunc
}

func newSlowPassing(t *testing.T, n int) *slowPassing {
	oldIn, newIn := startInstance(t, "old", nil), startInstance(t, "new", nil)
	sp := &slowPassing{
		old:  startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOf(t, "s", oldIn)}),
		next: startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", newIn)}),
	}
	sp.cls = parkedClients(t, sp.old, n)
	pass := passTo(sp.next.srv, &sp.passed)
	sp.pass = func(h *Handover) error {
		sp.calls.Add(1)
		time.Sleep(5 * time.Millisecond)
		return pass(h)
	}
	return sp
}

func TestPassingParkedConnectionsStopsWhenTimeIsUp(t *testing.T) {
	// 5 ms a pass, 100 ms in all: most are still to pass when the time is up.
	sp := newSlowPassing(t, 100)
	old, cls, slowPass, calls, passed := sp.old, sp.cls, sp.pass, &sp.calls, &sp.passed
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	old.srv.PassConnections(ctx, slowPass)
	atReturn := calls.Load()
	waitUntil(t, "every connection forgotten", func() bool { return old.srv.connCount() == 0 })
	time.Sleep(100 * time.Millisecond)
	if after := calls.Load() - atReturn; after > 1 {
		t.Errorf("%d passes tried after PassConnections returned (its time was up), want at most the one under way", after)
	}
	st := old.srv.PassStats()
	// The pass under way as Close came may fail on the closed connection.
	if st.Failed > 1 || st.Clients+st.Cut < int64(len(cls)) || st.Clients+st.Cut > int64(len(cls))+1 {
		t.Errorf("PassStats %+v: want the %d connections passed or cut, once each (and at most the one under way failed)", st, len(cls))
	}
	if st.Clients != passed.Load() || st.Clients == int64(len(cls)) {
		t.Errorf("PassStats.Clients %d, passed %d of %d: want the same, and not all", st.Clients, passed.Load(), len(cls))
	}
}

// TestAParkedConnectionThatWakesIsPassedFirst: thousands of parked
// connections take a while to pass, one after another; a client that
// sends its next request meanwhile does not wait for its turn: its
// connection is woken here and passes itself at once.
func TestAParkedConnectionThatWakesIsPassedFirst(t *testing.T) {
	sp := newSlowPassing(t, 300)
	old, cls, passed := sp.old, sp.cls, &sp.passed
	asking := cls[:10]
	askers := make(map[string]bool)
	for _, cl := range asking {
		askers[cl.c.LocalAddr().String()] = true
	}
	// The line stops at the eleventh of the others until the clients that
	// ask have their answers: one that waited for its turn would wait
	// for ever (until its read deadline). With the line going on, the
	// clients would race it, and a loaded machine could lose.
	answered := make(chan struct{})
	var once sync.Once
	letLineGo := func() { once.Do(func() { close(answered) }) }
	defer letLineGo()
	var inLine atomic.Int64
	pass := func(h *Handover) error {
		if !askers[h.Client.RemoteAddr().String()] && inLine.Add(1) == 11 {
			<-answered
		}
		return sp.pass(h)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- old.srv.PassConnections(ctx, pass)
	}()
	waitUntil(t, "the line stopped", func() bool { return inLine.Load() >= 11 })
	// Ten clients ask, wherever their connections stand in the line.
	askTheNewProcess(t, asking)
	letLineGo()
	// The rest of the line, 5 ms a pass: within PassConnections' 20 s.
	if err := <-done; err != nil {
		t.Fatalf("PassConnections: %v", err)
	}
	if n := passed.Load(); n != int64(len(cls)) {
		t.Errorf("passed %d, want %d", n, len(cls))
	}
}

// askTheNewProcess has each client ask once, while the line of connections
// to pass stands still, and checks that the new process answers, within 5 s.
func askTheNewProcess(t *testing.T, asking []*client) {
	t.Helper()
	for i, cl := range asking {
		cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, body, err := cl.do(get("x", "/"))
		if err != nil {
			t.Fatalf("client %d, asking while the line of connections to pass stood still: %v", i, err)
		}
		if body != "new GET /" || resp.Close {
			t.Errorf("client %d: %q close=%v, want the new process's answer", i, body, resp.Close)
		}
	}
}
