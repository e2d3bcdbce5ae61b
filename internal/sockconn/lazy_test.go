package sockconn

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestNotInThePollerUntilRead: what a parked connection is asked
// (Control, its addresses, CloseWrite, no deadline) leaves it out of
// Go's poller; the first read puts it there, and finds what the peer
// sent meanwhile.
func TestNotInThePollerUntilRead(t *testing.T) {
	c, cl := pair(t)
	var peeked int
	if err := c.raw.Control(func(fd uintptr) {
		peeked, _, _ = syscall.Recvfrom(int(fd), make([]byte, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		t.Fatal(err)
	}
	if peeked != -1 {
		t.Errorf("peeked %d bytes of a quiet connection", peeked)
	}
	c.LocalAddr()
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if c.file.Load() != nil {
		t.Fatal("Control, LocalAddr or no deadline put the descriptor in the poller")
	}
	cl.Write([]byte("GET"))
	time.Sleep(20 * time.Millisecond)
	buf := make([]byte, 8)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "GET" {
		t.Fatalf("the first Read: %q %v; want what the peer sent before it", buf[:n], err)
	}
	if c.file.Load() == nil {
		t.Fatal("a Read left the descriptor out of the poller")
	}
}

// TestClosedBeforeThePoller: a Conn closed without ever being read is
// closed once, and everything after says net.ErrClosed, as after a Close
// in the poller.
func TestClosedBeforeThePoller(t *testing.T) {
	c, cl := pair(t)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	cl.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := cl.Read(make([]byte, 1)); err == nil {
		t.Error("the peer read a byte; want the end of the connection")
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a second Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if err := c.SetReadDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("no deadline after Close: %v, want net.ErrClosed", err)
	}
	if err := c.raw.Control(func(uintptr) { t.Error("Control ran its function after Close") }); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Control after Close: %v, want net.ErrClosed", err)
	}
}

// TestControlReadAndCloseAtOnce: Control from several goroutines (the
// parker, a peek, the hand-over) while one reads (into the poller) and
// another closes: each Control's function sees the descriptor open, and
// after Close nothing runs on it (run with -race).
func TestControlReadAndCloseAtOnce(t *testing.T) {
	for range 50 {
		c, cl := pair(t)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := c.raw.Control(func(fd uintptr) {
						if _, err := syscall.Getsockname(int(fd)); err != nil {
							t.Errorf("a descriptor closed under Control: %v", err)
						}
					})
					if err != nil {
						if !errors.Is(err, net.ErrClosed) {
							t.Errorf("Control: %v", err)
						}
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Read(make([]byte, 1)) // ends with Close
		}()
		cl.Write([]byte("x"))
		time.Sleep(time.Millisecond)
		c.Close()
		close(stop)
		wg.Wait()
	}
}
