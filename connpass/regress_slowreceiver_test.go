package connpass

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// TestSlowButSteadyReceiverIsNotStuck: doc.go and sendTimeout say a send
// fails only when the receiver "takes nothing" for sendTimeout. A receiver
// that takes a message every few milliseconds, never pausing for anything
// near the timeout, must not fail any send. But a writer blocked on a full
// SEQPACKET buffer is woken only once about 3/4 of the buffer is read (some
// 150 messages), so a receiver slower than sendTimeout/150 per message
// fails a send with "took no message", and with it every send after.
// Here the timeout is half a second, and a message every ~6 ms: 150 of
// them take longer than the timeout, and a loaded machine may hold up the
// receiver a while without its taking nothing for the timeout.
func TestSlowButSteadyReceiverIsNotStuck(t *testing.T) {
	shortSendTimeout(t, 500*time.Millisecond)
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	var longestGap atomic.Int64
	done := make(chan error, 1)
	go func() {
		last := time.Now()
		done <- Receive(f, func(it Item) {
			it.Conn.Close()
			got.Add(1)
			if gap := time.Since(last); int64(gap) > longestGap.Load() {
				longestGap.Store(int64(gap))
			}
			time.Sleep(6 * time.Millisecond) // steady: one message every ~6 ms
			last = time.Now()
		})
	}()
	_, server := tcptest.Pair(t)
	const n = 320
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for range 8 {
		wg.Go(func() {
			for range n / 8 {
				if err := s.Send(8080, nil, server); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	s.Close()
	if err := <-done; err != nil {
		t.Errorf("Receive: %v", err)
	}
	t.Logf("received %d of %d; the receiver never paused longer than %v between messages",
		got.Load(), n, time.Duration(longestGap.Load()))
	if failed.Load() > 0 {
		t.Errorf("%d of %d sends failed (first: %v), though the receiver took a message every ~6 ms, never nothing for the %v timeout",
			failed.Load(), n, firstErr.Load(), sendTimeout)
	}
}
