package upstream

import (
	"io"
	"net"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// TestAPoolShrinksBackAfterABurst: a burst of 20 concurrent requests left
// 20 pooled connections; the load after it uses 2 at a time. The 18 it
// leaves alone are closed once unused in the pool for idleTimeout, at
// both ends; the 2 in use stay pooled.
func TestAPoolShrinksBackAfterABurst(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	b.idleTimeout = 2 * time.Second
	defer b.CloseIdle()
	const burst, load = 20, 2
	var conns []*Conn
	var servers []net.Conn
	for range burst {
		c, err := b.Get(0)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		servers = append(servers, <-accepted)
	}
	for _, c := range conns {
		b.Put(c)
	}
	// The load: 2 requests at a time, every 50 ms, for longer than
	// idleTimeout and two sweeps.
	end := time.Now().Add(b.idleTimeout + 3*sweepEvery)
	for time.Now().Before(end) {
		var taken []*Conn
		for range load {
			c, err := b.Get(0)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Reused {
				t.Fatalf("the load of %d at a time dialed a new connection with %d pooled", load, burst)
			}
			taken = append(taken, c)
		}
		for _, c := range taken {
			b.Put(c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.mu.Lock()
	n := len(b.pool)
	b.mu.Unlock()
	if n != load {
		t.Fatalf("%d connections pooled after %v of a load of %d at a time; want %d", n, b.idleTimeout+3*sweepEvery, load, load)
	}
	closed := 0
	for _, s := range servers {
		s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := s.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed != burst-load {
		t.Errorf("the instance saw %d of its %d connections closed; want the %d the load left alone", closed, burst, burst-load)
	}
}

// TestALongResponsesConnectionIsKept: a connection that carried a
// response for longer than idleTimeout was busy until it was put back:
// it stays pooled, and the next request takes it.
func TestALongResponsesConnectionIsKept(t *testing.T) {
	addr, _ := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	b.idleTimeout = time.Second
	defer b.CloseIdle()
	c, err := b.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(b.idleTimeout + 200*time.Millisecond) // the response takes this long
	b.Put(c)
	time.Sleep(sweepEvery + 200*time.Millisecond) // a sweep or two
	c2, err := b.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if !c2.Reused {
		t.Errorf("the connection of a %v response, back in the pool for %v, was closed; the next request dialed",
			b.idleTimeout+200*time.Millisecond, sweepEvery+200*time.Millisecond)
	}
}

// TestAPassedIdleConnectionIsKeptForIdleTimeout: one another process
// passed (AddIdle) stays pooled for the clients' requests to find, as
// long as one put back here; unused for idleTimeout, it is closed, and
// the instance sees it end.
func TestAPassedIdleConnectionIsKeptForIdleTimeout(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	b.idleTimeout = 2 * time.Second
	defer b.CloseIdle()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	defer server.Close()
	b.AddIdle(nc.(*net.TCPConn))
	server.SetReadDeadline(time.Now().Add(b.idleTimeout - 3*sweepEvery))
	if _, err := server.Read(make([]byte, 1)); err == io.EOF {
		t.Fatalf("a passed idle connection was closed before %v in the pool", b.idleTimeout-3*sweepEvery)
	}
	server.SetReadDeadline(time.Now().Add(b.idleTimeout + 3*sweepEvery))
	if _, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the instance's end of a passed idle connection no request took: %v; want EOF within %v", err, b.idleTimeout+3*sweepEvery)
	}
}
