package connpass

import (
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// shortSendTimeout makes sendTimeout d for the test.
func shortSendTimeout(t *testing.T, d time.Duration) {
	old := sendTimeout
	sendTimeout = d
	t.Cleanup(func() { sendTimeout = old })
}

// TestManySendsAtOnceEachGetTheirTurn: an upgrade passes thousands of
// connections at once, more than the socket buffers, to a receiver that
// takes them one by one. Each send waits its turn and then has the whole
// timeout for its write: all go through though passing them all takes
// longer than the timeout. (The timeout is half a second: a loaded
// machine may hold up the receiver a while without its taking nothing.)
func TestManySendsAtOnceEachGetTheirTurn(t *testing.T) {
	shortSendTimeout(t, 500*time.Millisecond)
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	var got int
	done := make(chan error, 1)
	go func() {
		done <- Receive(f, func(it Item) {
			it.Conn.Close()
			got++
			// A slow receiver: 3,000 take more than the timeout, 2 or 3
			// times. (A blocked writer waits until 3/4 of the socket's
			// buffer, about 200 messages here, is read: 50–100 ms.)
			if got%4 == 0 {
				time.Sleep(time.Millisecond)
			}
		})
	}()
	_, server := tcptest.Pair(t)
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if err := s.Send(8080, nil, server); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	took := time.Since(began)
	for err := range errs {
		t.Errorf("send: %v", err)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Errorf("Receive: %v", err)
	}
	t.Logf("%d connections passed in %v", got, took)
	if got != n {
		t.Errorf("received %d connections; want %d", got, n)
	}
	if took < sendTimeout {
		t.Errorf("passing took %v, less than the timeout %v: the test did not test the turns", took, sendTimeout)
	}
}

// sendUntilOneFails sends conn over s until a send fails (up to 100,000),
// and returns how long the failed send took, and its error.
func sendUntilOneFails(s *Sender, conn syscall.Conn) (time.Duration, error) {
	for range 100000 {
		began := time.Now()
		if err := s.Send(8080, nil, conn); err != nil {
			return time.Since(began), err
		}
	}
	return 0, nil
}

// TestStuckReceiverFailsTheSendsAfterIt: a receiver that takes nothing
// fails the send whose turn it is after the timeout, and every send after
// it at once; each connection stays the sender's. (The timeout is 1 s: "at
// once" is under half of it, on a loaded machine too.)
func TestStuckReceiverFailsTheSendsAfterIt(t *testing.T) {
	shortSendTimeout(t, time.Second)
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // open, never read
	defer s.Close()
	client, server := tcptest.Pair(t)
	_, firstErr := sendUntilOneFails(s, server)
	if firstErr == nil || !strings.Contains(firstErr.Error(), "took no message") {
		t.Fatalf("sends to a receiver that reads nothing: %v; want one to fail after the timeout", firstErr)
	}
	began := time.Now()
	err = s.Send(8080, nil, server)
	if err == nil || !strings.Contains(err.Error(), "took no message") || time.Since(began) > sendTimeout/2 {
		t.Errorf("the send after a stuck one: %v in %v; want it to fail at once", err, time.Since(began))
	}
	// The connection is still the sender's, and works.
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := server.Read(b); err != nil || b[0] != 'x' {
		t.Errorf("the sender's connection after the failed sends: %q, %v", b, err)
	}
}
