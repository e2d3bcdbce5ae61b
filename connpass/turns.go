package connpass

import "sync"

// turns gives the sends their turns, one at a time: those whose client
// waits for an answer (its next request came) before all others, each
// kind in the order they asked. At an upgrade thousands of idle
// connections wait their turn at once; a request sent on one of them
// meanwhile must not wait for all of them.
//
// Ownership: mu guards busy and the queues; whoever holds the turn (take
// returned, give not yet called) owns what the turn guards.
type turns struct {
	mu    sync.Mutex
	busy  bool
	first []chan struct{} // waiting, their clients waiting too
	rest  []chan struct{}
}

// take waits for the turn; first puts the wait ahead of every other not
// first.
func (t *turns) take(first bool) {
	t.mu.Lock()
	if !t.busy {
		t.busy = true
		t.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	if first {
		t.first = append(t.first, ch)
	} else {
		t.rest = append(t.rest, ch)
	}
	t.mu.Unlock()
	<-ch
}

// give passes the turn to the next waiting, or frees it.
func (t *turns) give() {
	t.mu.Lock()
	next := pop(&t.first)
	if next == nil {
		next = pop(&t.rest)
	}
	if next == nil {
		t.busy = false
	}
	t.mu.Unlock()
	if next != nil {
		close(next)
	}
}

// pop takes the first of q, or nil.
func pop(q *[]chan struct{}) chan struct{} {
	if len(*q) == 0 {
		return nil
	}
	ch := (*q)[0]
	(*q)[0] = nil
	*q = (*q)[1:]
	if len(*q) == 0 {
		*q = nil // the array's room before the start is not reused: let it go
	}
	return ch
}
