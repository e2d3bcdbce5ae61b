package connpass

import (
	"testing"

	"smoothserve/internal/tcptest"
)

// BenchmarkPassIdle is one idle connection to an instance sent and made a
// connection at the receiving end, as an upgrade passes a pool's.
func BenchmarkPassIdle(b *testing.B) {
	s, f, err := NewPair()
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan Item, 1)
	done := make(chan error, 1)
	go func() { done <- Receive(f, func(it Item) { got <- it }) }()
	_, server := tcptest.Pair(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SendIdle("127.0.0.1:8080", server); err != nil {
			b.Fatal(err)
		}
		it := <-got
		if it.Kind != Idle {
			b.Fatalf("received a %c", it.Kind)
		}
		it.Conn.Close()
	}
	s.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
