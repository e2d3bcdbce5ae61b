package upstream

import (
	"net"
	"sync"
	"testing"
	"time"

	"smoothserve/internal/stackmem"
)

// TestADialLeavesTheCallersStackSmall: net's dial goes about 5.6 KB deep,
// so a connection goroutine that dialed on its own stack kept a stack
// twice the size it needs (8 instead of 4 KiB) for the rest of its life:
// with thousands of busy connections, tens of MB. Backend.Dial dials on a
// goroutine of its own. Compared here with dialing in place: the stack in
// use of 300 goroutines parked after a dial, each way.
func TestADialLeavesTheCallersStackSmall(t *testing.T) {
	if !stackmem.InProcessOfItsOwn(t) {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		accepted []net.Conn
	)
	go func() { // one goroutine holds every connection: none a connection
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	b := NewBackend("web", 0, addr)
	inPlace := stackAfter(t, func() (net.Conn, error) { return dialer.Dial("tcp", addr) })
	apart := stackAfter(t, func() (net.Conn, error) {
		c, err := b.Dial()
		if err != nil {
			return nil, err
		}
		return c.Socket, nil
	})
	t.Logf("stack in use a goroutine after a dial: %d bytes in place, %d through Backend.Dial", inPlace, apart)
	if apart*4 > inPlace*3 { // 8 KiB against 4 and a little
		t.Errorf("Backend.Dial left %d bytes of stack a goroutine, dialing in place %d: want well under", apart, inPlace)
	}
}

// stackAfter is the stack in use, a goroutine, of 300 goroutines parked
// after dialing with dial.
func stackAfter(t *testing.T, dial func() (net.Conn, error)) uint64 {
	const n = 300
	var (
		ready, done sync.WaitGroup
		mu          sync.Mutex
		conns       []net.Conn
	)
	release := make(chan struct{})
	before := stackmem.InUse()
	for range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			c, err := dial()
			if err != nil {
				t.Error(err)
			} else {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
			ready.Done()
			<-release // parked, with the stack the dial left it
		}()
	}
	ready.Wait()
	time.Sleep(10 * time.Millisecond)
	after := stackmem.InUse() // the dialing goroutines' stacks are back
	close(release)
	done.Wait()
	for _, c := range conns {
		c.Close()
	}
	return (after - before) / n
}
