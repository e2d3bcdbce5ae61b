package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// TestConcurrentWrites is the package's guarantee, checked under -race:
// writers and a reader at once, and every write whole at the end.
func TestConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("abc\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	got := b.String()
	if n := strings.Count(got, "abc\n"); n != 400 || len(got) != 4*400 {
		t.Errorf("got %d whole writes in %d bytes, want 400 in %d", n, len(got), 4*400)
	}
}
