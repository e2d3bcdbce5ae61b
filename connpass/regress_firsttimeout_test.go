package connpass

import (
	"strings"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// TestReceiverThatTakesNothingIsStuckAfterOneTimeout: doc.go and
// sendTimeout say a receiver that takes nothing for sendTimeout fails the
// send. The first timeout must count as "no progress" too (what was queued
// before the write is its baseline): once it had none, a receiver that read
// nothing at all held the send for 2×sendTimeout (4 s, not 2 s). Here
// the timeout is 1 s: a loaded machine's delays stay well under the second
// that tells one timeout from two.
func TestReceiverThatTakesNothingIsStuckAfterOneTimeout(t *testing.T) {
	shortSendTimeout(t, time.Second)
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // open, never read
	defer s.Close()
	_, server := tcptest.Pair(t)
	took, err := sendUntilOneFails(s, server)
	if err == nil || !strings.Contains(err.Error(), "took no message") {
		t.Fatalf("sends to a receiver that reads nothing: %v; want one to fail", err)
	}
	if took > sendTimeout*3/2 {
		t.Errorf("the send to a receiver that took nothing failed after %v; want about the timeout, %v", took, sendTimeout)
	}
}
