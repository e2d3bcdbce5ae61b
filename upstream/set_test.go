package upstream

import (
	"context"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

func TestPickFewestInflightThenTurns(t *testing.T) {
	s := NewSet("s", time.Second)
	a, b, c := NewBackend("s", 0, "a"), NewBackend("s", 1, "b"), NewBackend("s", 2, "c")
	for _, x := range []*Backend{a, b, c} {
		s.Add(x)
	}
	// Equal load: each in turn.
	counts := map[*Backend]int{}
	for i := 0; i < 30; i++ {
		x := s.Pick(nil)
		counts[x]++
		x.Release(true)
	}
	for _, x := range []*Backend{a, b, c} {
		if counts[x] != 10 {
			t.Errorf("%s picked %d of 30 times at equal load, want 10", x.Addr, counts[x])
		}
	}
	// Unequal load: the idle one.
	a.acquire()
	a.acquire()
	c.acquire()
	if got := s.Pick(nil); got != b {
		t.Errorf("picked %s with in-flight a=2 b=0 c=1, want b", got.Addr)
	}
	var tried Tried
	tried.Add(b)
	if got := s.Pick(&tried); got != c {
		t.Errorf("picked %s with b tried, want c (fewest in flight among the rest)", got.Addr)
	}
	if a.Served() != 10 {
		t.Errorf("a served %d, want 10", a.Served())
	}
}

func TestDrainedBackendIsNeverPicked(t *testing.T) {
	s := NewSet("s", time.Second)
	a, b := NewBackend("s", 0, "a"), NewBackend("s", 1, "b")
	s.Add(a)
	s.Add(b)
	s.Remove(a)
	for i := 0; i < 10; i++ {
		x := s.Pick(nil)
		if x != b {
			t.Fatalf("picked %s after it was removed", x.Addr)
		}
		x.Release(true)
	}
	if !a.WaitIdle(context.Background()) {
		t.Fatal("a removed with nothing in flight is not idle")
	}
}

// TestDrainRace hammers Pick while backends are drained: no request may be
// counted on a backend after its WaitIdle returned.
func TestDrainRace(t *testing.T) {
	s := NewSet("s", time.Second)
	var stop atomic.Bool
	var late atomic.Int64
	var wg sync.WaitGroup
	idled := sync.Map{} // *Backend → struct{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				x := s.Pick(nil)
				if x == nil {
					continue
				}
				if _, ok := idled.Load(x); ok {
					late.Add(1)
				}
				x.Release(true)
				runtime.Gosched()
			}
		}()
	}
	for i := 0; i < 200; i++ {
		old := NewBackend("s", 0, "old")
		s.Add(old)
		s.Add(NewBackend("s", 1, "new"))
		time.Sleep(100 * time.Microsecond)
		s.Remove(old)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if !old.WaitIdle(ctx) {
			t.Fatal("drained backend never became idle")
		}
		cancel()
		idled.Store(old, struct{}{})
	}
	stop.Store(true)
	wg.Wait()
	if n := late.Load(); n != 0 {
		t.Fatalf("%d requests were counted on a backend after WaitIdle returned", n)
	}
}

func TestWaitIdleWaitsForInflight(t *testing.T) {
	s := NewSet("s", time.Second)
	a := NewBackend("s", 0, "a")
	s.Add(a)
	x := s.Pick(nil)
	s.Remove(a)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if a.WaitIdle(ctx) {
		t.Fatal("WaitIdle returned true with a request in flight")
	}
	go func() { time.Sleep(20 * time.Millisecond); x.Release(true) }()
	if !a.WaitIdle(context.Background()) {
		t.Fatal("WaitIdle did not see the release")
	}
}

func TestWait(t *testing.T) {
	s := NewSet("s", time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if s.Wait(ctx, nil) {
		t.Fatal("Wait on an empty set returned true")
	}
	go func() { time.Sleep(20 * time.Millisecond); s.Add(NewBackend("s", 0, "a")) }()
	if !s.Wait(context.Background(), nil) {
		t.Fatal("Wait did not see the backend added")
	}
	s.SetStopped(true)
	if s.Wait(context.Background(), nil) {
		t.Fatal("Wait on a stopped set returned true")
	}
}

func TestPoolAndDeadConnections(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	c1, err := b.Get(0)
	if err != nil || c1.Reused {
		t.Fatalf("first Get: %v reused=%v", err, c1.Reused)
	}
	server1 := <-accepted
	b.Put(c1)
	c2, err := b.Get(0)
	if err != nil || c2 != c1 || !c2.Reused {
		t.Fatalf("second Get did not reuse the idle connection: %v", err)
	}
	b.Put(c2)
	// The instance closes its end: the pool checks the connection before
	// it hands it out, and does not.
	server1.Close()
	time.Sleep(20 * time.Millisecond)
	c3, err := b.Get(0)
	if err != nil || c3 == c1 || c3.Reused {
		t.Fatalf("Get after the instance closed the idle connection: same=%v reused=%v err=%v", c3 == c1, c3.Reused, err)
	}
	<-accepted
	b.CloseIdle()
	b.Put(c3)
	if c := b.getIdle(0); c != nil {
		t.Fatal("a connection put back after CloseIdle was pooled")
	}
}

// TestIdleCountsFromTheRequestSent: a connection taken for a request a
// while ago is as idle as that to a Get with maxIdle, however late its
// response was read and it was put back (the instance's idle clock started
// when it answered); one taken just now is fresh when put back. (maxIdle
// is 1 s: "just now" stays fresh however long a loaded machine takes
// between two lines of this test.)
func TestIdleCountsFromTheRequestSent(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	c1, err := b.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	c1.takenAt = time.Now().Add(-1500 * time.Millisecond) // its request went out 1.5 s ago
	b.Put(c1)
	if c, err := b.Get(time.Second); err != nil || c == c1 || c.Reused {
		t.Fatalf("Get(1s) of a connection whose request went out 1.5s ago: same=%v reused=%v err=%v; want a new one", c == c1, c != nil && c.Reused, err)
	} else {
		<-accepted
		c.Close()
	}
	// Still pooled, for requests that may be sent again.
	c2, err := b.Get(0)
	if err != nil || c2 != c1 {
		t.Fatalf("Get(0): same=%v err=%v; want the pooled one", c2 == c1, err)
	}
	b.Put(c2) // taken by that Get: idle from just now
	if c, err := b.Get(time.Second); err != nil || c != c1 {
		t.Fatalf("Get(1s) of a connection put back just now: same=%v err=%v; want it", c == c1, err)
	}
	c1.Close()
}

func TestTakeIdleAndAddIdleMoveConnectionsBetweenBackends(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	from := NewBackend("s", 0, addr)
	c1, err := from.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := from.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	server1, server2 := <-accepted, <-accepted
	from.Put(c1)
	from.Put(c2)
	taken := from.TakeIdle()
	if len(taken) != 2 {
		t.Fatalf("TakeIdle returned %d connections, want 2", len(taken))
	}
	if c := from.getIdle(0); c != nil {
		t.Fatal("the pool still holds a connection after TakeIdle")
	}

	// Another backend (the new process's) takes them; the instance has
	// closed one of them meanwhile, which is found before it is used.
	to := NewBackend("s", 0, addr)
	server1.Close()
	time.Sleep(20 * time.Millisecond)
	for _, c := range taken {
		s := c.Socket
		c.Socket, c.R = nil, nil // the new backend owns the socket now
		to.AddIdle(s)
	}
	got, err := to.Get(0)
	if err != nil || !got.Reused {
		t.Fatalf("Get after AddIdle: reused=%v err=%v; want a passed connection", got != nil && got.Reused, err)
	}
	// The one handed out is the open one: server2 sees the bytes.
	if _, err := got.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	server2.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := server2.Read(b[:]); err != nil {
		t.Fatalf("the connection reused after AddIdle is not the live one: %v", err)
	}
	// The closed one is checked when its turn comes, and dropped.
	fresh, err := to.Get(0)
	if err != nil || fresh.Reused {
		t.Fatalf("Get with only the closed passed connection pooled: reused=%v err=%v; want a new connection", fresh != nil && fresh.Reused, err)
	}
	<-accepted
}

// TestSweepDropsConnectionsTheInstanceClosed: an idle pooled connection the
// instance closes leaves the pool without a request coming to find it.
func TestSweepDropsConnectionsTheInstanceClosed(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	var conns []*Conn
	for i := 0; i < 3; i++ {
		c, err := b.Get(0)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	servers := []net.Conn{<-accepted, <-accepted, <-accepted}
	for _, c := range conns {
		b.Put(c)
	}
	servers[0].Close()
	servers[2].Close()
	pooled := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.pool)
	}
	deadline := time.Now().Add(4 * sweepEvery)
	for pooled() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := pooled(); n != 1 {
		t.Fatalf("%d connections pooled %v after the instance closed 2 of 3, want 1", n, 4*sweepEvery)
	}
	b.CloseIdle()
}

// TestIdlePooledConnectionRests: a pooled connection idle for restAfter
// gives its reader back, and gets one again when it is taken, from the
// pool or by TakeIdle, reading as before.
func TestIdlePooledConnectionRests(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	var conns []*Conn
	for range 2 {
		c, err := b.Get(0)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	servers := []net.Conn{<-accepted, <-accepted}
	for _, c := range conns {
		b.Put(c)
	}
	rested := func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.pool {
			if c.R != nil {
				return false
			}
		}
		return len(b.pool) == 2
	}
	deadline := time.Now().Add(restAfter + 4*sweepEvery)
	for !rested() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !rested() {
		t.Fatalf("pooled connections still hold their readers %v after they were put back", restAfter+4*sweepEvery)
	}

	c, err := b.Get(0)
	if err != nil || !c.Reused || c.R == nil {
		t.Fatalf("Get after resting: reused=%v reader=%v err=%v; want a pooled connection with a reader", c != nil && c.Reused, c != nil && c.R != nil, err)
	}
	server := servers[1] // the most recently used is handed out first
	server.Write([]byte("hi"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := c.R.Peek(2); err != nil || string(got) != "hi" {
		t.Fatalf("reading a rested connection: %q %v", got, err)
	}
	c.Close()
	for _, c := range b.TakeIdle() {
		if c.R == nil {
			t.Fatal("TakeIdle handed out a connection without its reader")
		}
		c.Close()
	}
}
