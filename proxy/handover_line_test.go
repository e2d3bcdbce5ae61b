package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAnIdleConnectionThatAsksAtAHandOverGoesFirst: at a hand-over, the
// idle connections not parked yet (each with its goroutine waiting) join
// the line of those to pass, parked, rather than all ask to be passed at
// once; a client that sends its next request meanwhile is passed at once,
// marked Waiting (connpass's sender puts it ahead of the idle ones), not
// after the thousands ahead of it.
func TestAnIdleConnectionThatAsksAtAHandOverGoesFirst(t *testing.T) {
	oldIn, newIn := startInstance(t, "old", nil), startInstance(t, "new", nil)
	old := startProxy(t, Options{parkAfter: time.Minute}, Route{Port: 1, Set: setOf(t, "s", oldIn)})
	next := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", newIn)})
	const n = 200
	cls := make([]*client, n)
	for i := range cls {
		cls[i] = dial(t, old.addr)
		cls[i].mustDo(get("x", "/"))
	}
	if p := old.srv.parker.count(); p != 0 {
		t.Fatalf("%d connections parked before the hand-over, want none: idle ones, each with its goroutine", p)
	}

	// The line stands still after ten idle connections passed, until the
	// clients that ask have their answers: one that waited for its turn
	// would wait for ever (until its read deadline).
	answered := make(chan struct{})
	var once sync.Once
	letLineGo := func() { once.Do(func() { close(answered) }) }
	defer letLineGo()
	var passed, idlePassed atomic.Int64
	toNext := passTo(next.srv, &passed)
	var mu sync.Mutex
	gone := make(map[string]bool)    // the clients whose connections were taken to be passed, by their address
	waiting := make(map[string]bool) // those passed marked Waiting
	pass := func(h *Handover) error {
		mu.Lock()
		gone[h.Client.RemoteAddr().String()] = true // taken: held here from now on, perhaps blocked below
		mu.Unlock()
		if !h.Waiting && idlePassed.Add(1) > 10 {
			<-answered
		}
		addr := h.Client.RemoteAddr().String()
		err := toNext(h)
		mu.Lock()
		if err == nil && h.Waiting {
			waiting[addr] = true
		}
		mu.Unlock()
		return err
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- old.srv.PassConnections(ctx, pass)
	}()
	waitUntil(t, "the line stood still", func() bool { return idlePassed.Load() > 10 })
	waitUntil(t, "the idle connections parked in the line", func() bool { return old.srv.parker.count() >= n-20 })

	// Ten clients ask whose connections are still in the line.
	var asking []*client
	mu.Lock()
	for _, cl := range cls {
		if !gone[cl.c.LocalAddr().String()] && len(asking) < 10 {
			asking = append(asking, cl)
		}
	}
	mu.Unlock()
	askTheNewProcess(t, asking)
	letLineGo()
	if err := <-done; err != nil {
		t.Fatalf("PassConnections: %v", err)
	}
	if got := passed.Load(); got != n {
		t.Errorf("passed %d, want %d", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, cl := range asking {
		if !waiting[cl.c.LocalAddr().String()] {
			t.Errorf("client %d asked, and its connection was not passed marked Waiting", i)
		}
	}
	if len(waiting) != len(asking) {
		t.Errorf("%d connections passed marked Waiting, want the %d whose clients asked", len(waiting), len(asking))
	}
}
