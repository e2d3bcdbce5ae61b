package connpass

import (
	"strings"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// TestReceiverThatTakesNothingIsStuckAfterOneTimeout: doc.go and
// sendTimeout say a receiver that takes nothing for sendTimeout fails the
// send. writeLocked starts queued at -1, so the first timeout never counts
// as "no progress" (there is nothing to compare with): a receiver that
// reads nothing at all holds the send for 2×sendTimeout (4 s, not 2 s).
func TestReceiverThatTakesNothingIsStuckAfterOneTimeout(t *testing.T) {
	shortSendTimeout(t, 300*time.Millisecond)
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // open, never read
	defer s.Close()
	_, server := tcptest.Pair(t)
	var took time.Duration
	for i := 0; i < 100000; i++ {
		began := time.Now()
		err = s.Send(8080, nil, server)
		took = time.Since(began)
		if err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "took no message") {
		t.Fatalf("sends to a receiver that reads nothing: %v; want one to fail", err)
	}
	if took > sendTimeout*3/2 {
		t.Errorf("the send to a receiver that took nothing failed after %v; want about the timeout, %v", took, sendTimeout)
	}
}
