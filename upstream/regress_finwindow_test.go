package upstream

import (
	"errors"
	"testing"
	"time"
)

// A pooled connection the instance closes (a FIN, its side still reading)
// in the moment between Get's look and WriteRequest: the close's
// readiness is gone by the time WriteRequest waits, and the wait would
// never end (found by review). A connection idle for recheckIdle is
// looked at again inside the wait: nothing is sent, and ErrStaleNotSent
// lets any request go on another connection.
func TestWriteRequestAfterAFINInGetsWindow(t *testing.T) {
	c, srv := dialedInstance(t)
	got := make(chan int, 1)
	go func() { // the instance's side reads on (a lingering close)
		n := 0
		buf := make([]byte, 4096)
		for {
			m, err := srv.Read(buf)
			n += m
			if err != nil {
				got <- n
				return
			}
		}
	}()
	if !c.alive() {
		t.Fatal("not alive before the FIN")
	}
	// As Get hands out a connection idle for a second.
	c.Reused, c.idleSince, c.takenAt = true, time.Now().Add(-time.Second), time.Now()
	srv.CloseWrite()
	time.Sleep(20 * time.Millisecond) // the poller takes the FIN's readiness
	done := make(chan error, 1)
	go func() { done <- c.WriteRequest([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStaleNotSent) {
			t.Fatalf("WriteRequest = %v, want ErrStaleNotSent", err)
		}
	case <-time.After(3 * time.Second):
		c.Socket.SetReadDeadline(time.Now())
		<-done
		t.Fatal("WriteRequest still waits 3 s after the instance closed its side")
	}
	c.Close()
	srv.Close()
	if n := <-got; n != 0 {
		t.Fatalf("the instance got %d bytes; want none", n)
	}
}
