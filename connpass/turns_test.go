package connpass

import (
	"strings"
	"sync"
	"sync/atomic"
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

// The turn goes to the waiting sends marked first, in the order they
// asked, then to the others in theirs.
func TestTurnsGoFirstToThoseMarkedFirst(t *testing.T) {
	var tr turns
	tr.take(false) // the send under way
	got := make(chan string, 5)
	queued := func(first, rest int) bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.first) == first && len(tr.rest) == rest
	}
	ask := func(name string, first bool, nFirst, nRest int) {
		go func() {
			tr.take(first)
			got <- name
			tr.give()
		}()
		deadline := time.Now().Add(5 * time.Second)
		for !queued(nFirst, nRest) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not queued within 5 s", name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	ask("idle 1", false, 0, 1)
	ask("idle 2", false, 0, 2)
	ask("waiting 1", true, 1, 2)
	ask("idle 3", false, 1, 3)
	ask("waiting 2", true, 2, 3)
	tr.give()
	want := []string{"waiting 1", "waiting 2", "idle 1", "idle 2", "idle 3"}
	for i, w := range want {
		select {
		case name := <-got:
			if name != w {
				t.Fatalf("turn %d went to %s, want %s", i, name, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("turn %d not given within 5 s", i)
		}
	}
	// All done: the turn is free, taken at once.
	tr.take(true)
	tr.give()
	if tr.busy || tr.first != nil || tr.rest != nil {
		t.Errorf("after the last give: busy %v, first %v, rest %v", tr.busy, tr.first, tr.rest)
	}
}

// TestAWaitingSendIsNotBehindAFullBuffer: a line of idle connections
// fills the socket's buffer only to room (a quarter of it), so that a
// connection whose client waits, sent ahead of the rest of the line, is
// read after at most room's worth of messages, not after the few hundred
// a full buffer holds.
func TestAWaitingSendIsNotBehindAFullBuffer(t *testing.T) {
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	_, server := tcptest.Pair(t)
	const line = 600
	var sent atomic.Int64
	go func() {
		for range line {
			if s.Send(8080, nil, server) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	// Nothing is read yet: the line stops once room is queued.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if s.queued() >= s.room-4096 {
			last := sent.Load()
			time.Sleep(50 * time.Millisecond)
			if sent.Load() == last {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the line did not stop at room (%d bytes): %d sent, %d bytes queued", s.room, sent.Load(), s.queued())
		}
	}
	if q := s.queued(); q > s.room+4096 {
		t.Errorf("%d bytes queued for the receiver, want at most room (%d) and a message", q, s.room)
	}
	before := sent.Load()
	waited := make(chan error, 1)
	go func() { waited <- s.SendWaiting(9090, []byte("GET /"), server) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.turn.mu.Lock()
		queued := len(s.turn.first)
		s.turn.mu.Unlock()
		if queued == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiting send did not queue for its turn")
		}
	}
	at, n := -1, 0
	done := make(chan error, 1)
	go func() {
		done <- Receive(f, func(it Item) {
			if it.Port == 9090 {
				at = n
			}
			n++
			it.Conn.Close()
		})
	}()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	for sent.Load() < line {
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("the waiting connection was the receiver's %dth of %d; %d had been sent when it asked", at+1, n, before)
	if at < 0 || at >= 150 || n != line+1 {
		t.Errorf("the waiting connection came %dth of %d, want among the first 150 of %d", at+1, n, line+1)
	}
}
