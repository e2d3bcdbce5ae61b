package daemon

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"smoothserve/connpass"
	"smoothserve/internal/tcptest"
	"smoothserve/upstream"
)

// instance is the address of a listener that holds every connection, as
// an idle HTTP instance would.
func instance(t *testing.T) string {
	addr, _ := tcptest.AcceptAll(t)
	return addr
}

// pooled gives b n idle connections, as requests through it would leave.
func pooled(t *testing.T, b *upstream.Backend, n int) {
	t.Helper()
	var cs []*upstream.Conn
	for range n {
		c, err := b.Get(0)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		b.Put(c)
	}
}

// received runs Receive on the far end of a fresh pair and returns the
// pair's sender, and a function that closes it and returns how many idle
// connections arrived for each address.
func received(t *testing.T) (*connpass.Sender, func() map[string]int) {
	t.Helper()
	pass, f, err := connpass.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		connpass.Receive(f, func(it connpass.Item) {
			if it.Kind == connpass.Idle {
				got[it.Addr]++
			}
			it.Conn.Close()
		})
	}()
	return pass, func() map[string]int {
		pass.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Receive did not end after the sender closed")
		}
		return got
	}
}

func daemonWith(backends ...*upstream.Backend) *Daemon {
	set := upstream.NewSet("web", time.Second)
	for _, b := range backends {
		set.Add(b)
	}
	return &Daemon{sets: map[string]*upstream.Set{"web": set}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestPassIdleSendsEveryIdleConnectionWithItsInstance(t *testing.T) {
	a := upstream.NewBackend("web", 0, instance(t))
	b := upstream.NewBackend("web", 1, instance(t))
	pooled(t, a, 3)
	pooled(t, b, 1)
	pass, got := received(t)
	daemonWith(a, b).passIdle(pass)
	if n := len(a.TakeIdle()); n != 0 {
		t.Errorf("%d connections left in the pool after passIdle", n)
	}
	if g := got(); len(g) != 2 || g[a.Addr] != 3 || g[b.Addr] != 1 {
		t.Errorf("idle connections received by address: %v; want 3 to %s, 1 to %s", g, a.Addr, b.Addr)
	}
}

func TestPassIdleClosesWhatItCannotPass(t *testing.T) {
	a := upstream.NewBackend("web", 0, instance(t))
	pooled(t, a, 3)
	pass, got := received(t)
	got() // the pair is closed: sending fails
	daemonWith(a).passIdle(pass)
	if n := len(a.TakeIdle()); n != 0 {
		t.Errorf("%d connections that could not be passed went back to the pool", n)
	}
}
