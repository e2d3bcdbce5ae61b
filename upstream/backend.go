package upstream

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one instance (one process on one port) as the proxy sees it.
// A Backend is used for one process lifetime and never reused after Drain.
//
// Ownership: the counters are atomics written by the proxy; draining is set
// by the supervisor; pool is guarded by mu.
type Backend struct {
	Addr    string // host:port the instance listens on
	Service string // service name, for logs
	Slot    int    // slot of the instance within its service

	inflight atomic.Int64
	served   atomic.Uint64
	draining atomic.Bool

	idleOnce sync.Once
	idle     chan struct{} // closed when draining and nothing is in flight

	mu       sync.Mutex
	pool     []*Conn // idle connections, by idleSince, the freshest last
	shut     bool    // pool closed: connections put back are closed
	sweeping bool    // a sweep of the pool is scheduled
	// idleTimeout is the package's, shorter in tests.
	idleTimeout time.Duration
}

// maxIdlePerBackend bounds the idle pool: more idle connections than
// concurrent requests ever seen are not useful. One idle for restAfter
// holds no buffer (sweep), but a socket on either side.
const maxIdlePerBackend = 256

// sweepEvery is how often an idle pool is checked for connections the
// instance closed, so that they leave the pool (and the instance's
// half-closed sockets are released) even when no request comes to find
// them.
const sweepEvery = 500 * time.Millisecond

// idleTimeout is how long a connection may sit in the pool unused before
// the sweep closes it, as nginx's upstream keepalive_timeout (60 s by
// default). The pool takes its freshest first, so what sits this long is
// what a burst of requests left beyond the load that followed it (a
// hand-over's queued requests, a spike): without it, the pool would keep
// up to maxIdlePerBackend sockets on either side for good, against an
// instance that never closes them (a Go server without IdleTimeout), and
// pass them all to the next smoothserve at every upgrade. Counted in the
// sweeps a connection sat through in the pool since it was last put back
// (no clock read on the request path), not from its request (idleSince):
// one that carried a long response was busy till then.
const idleTimeout = 30 * time.Second

// NewBackend returns a Backend for the instance at addr.
func NewBackend(service string, slot int, addr string) *Backend {
	return &Backend{Addr: addr, Service: service, Slot: slot, idle: make(chan struct{}), idleTimeout: idleTimeout}
}

// Inflight is the number of requests sent to (or about to be sent to) the
// instance that have not finished.
func (b *Backend) Inflight() int64 { return b.inflight.Load() }

// Served is the number of requests the instance has answered.
func (b *Backend) Served() uint64 { return b.served.Load() }

// Draining reports whether the backend has left rotation for good.
func (b *Backend) Draining() bool { return b.draining.Load() }

// acquire counts a request against b, unless b is draining.
func (b *Backend) acquire() bool {
	b.inflight.Add(1)
	if b.draining.Load() {
		b.Release(false)
		return false
	}
	return true
}

// Claim counts against b a request that another process sent and passed
// on in the middle of its response (connpass), draining or not: Release
// ends it as any other.
func (b *Backend) Claim() { b.inflight.Add(1) }

// Release ends a request counted by Set.Pick or Claim; answered says whether the
// instance produced a response.
func (b *Backend) Release(answered bool) {
	if answered {
		b.served.Add(1)
	}
	if b.inflight.Add(-1) == 0 && b.draining.Load() {
		b.idleOnce.Do(func() { close(b.idle) })
	}
}

// Drain stops new requests from being picked for b. Call Set.Remove too.
// In-flight requests go on; WaitIdle waits for them.
func (b *Backend) Drain() {
	b.draining.Store(true)
	if b.inflight.Load() == 0 {
		b.idleOnce.Do(func() { close(b.idle) })
	}
}

// WaitIdle waits until b is draining and has no request in flight, or ctx is
// done; it reports whether b became idle.
func (b *Backend) WaitIdle(ctx context.Context) bool {
	select {
	case <-b.idle:
		return true
	case <-ctx.Done():
		return false
	}
}

// Down drains b and closes its idle connections at once: the instance is
// gone, and its connections are dead.
func (b *Backend) Down() {
	b.Drain()
	b.CloseIdle()
}

// CloseIdle closes the pooled connections and closes any connection put back
// from now on, so the instance sees no connection it might race to close.
func (b *Backend) CloseIdle() {
	b.mu.Lock()
	b.shut = true
	b.mu.Unlock()
	for _, c := range b.TakeIdle() {
		c.Close()
	}
}

// CloseIdleFor closes up to max pooled connections unused for d or
// longer, the longest unused first, and reports how many: room for other
// descriptors when the process has none left. What stays pooled is the
// connections in use lately.
func (b *Backend) CloseIdleFor(d time.Duration, max int) int {
	now := time.Now()
	b.mu.Lock()
	n := 0
	for n < len(b.pool) && n < max && now.Sub(b.pool[n].idleSince) >= d {
		n++
	}
	old := slices.Clone(b.pool[:n])
	b.pool = slices.Delete(b.pool, 0, n)
	b.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
	return n
}

// TakeIdle empties the pool and returns what it held, for another process
// (connpass); the caller owns the connections, each with its R.
// Connections put back later are pooled as before.
func (b *Backend) TakeIdle() []*Conn {
	b.mu.Lock()
	pool := b.pool
	b.pool = nil
	b.mu.Unlock()
	for _, c := range pool {
		c.wake()
	}
	return pool
}

// getIdle pops the idle connection idle for the shortest time, or nil;
// with maxIdle > 0, nil too if that one has been idle for maxIdle or
// longer.
func (b *Backend) getIdle(maxIdle time.Duration) *Conn {
	b.mu.Lock()
	n := len(b.pool)
	if n == 0 || (maxIdle > 0 && time.Since(b.pool[n-1].idleSince) >= maxIdle) {
		b.mu.Unlock()
		return nil
	}
	c := b.pool[n-1]
	b.pool[n-1] = nil
	b.pool = b.pool[:n-1]
	b.mu.Unlock()
	return c
}

// Put returns a connection whose last response was read completely; it
// counts as idle since it was taken to carry that request (takenAt).
func (b *Backend) Put(c *Conn) { b.put(c, c.takenAt) }

// put pools c, idle since then.
func (b *Backend) put(c *Conn, since time.Time) {
	c.unwatch()
	c.idleSince = since
	c.sweeps = 0
	b.mu.Lock()
	if b.shut || len(b.pool) >= maxIdlePerBackend {
		b.mu.Unlock()
		c.Close()
		return
	}
	// Ordered by idleSince, the freshest last, where getIdle looks: one
	// put back after a long response (idle since its request went out)
	// goes under those used since.
	i := len(b.pool)
	for i > 0 && b.pool[i-1].idleSince.After(since) {
		i--
	}
	b.pool = slices.Insert(b.pool, i, c)
	if !b.sweeping {
		b.sweeping = true
		time.AfterFunc(sweepEvery, b.sweep)
	}
	b.mu.Unlock()
}

// sweep closes the pooled connections the instance closed or wrote to and
// those unused in the pool for idleTimeout, makes those idle for
// restAfter give back their readers, and schedules the next sweep while
// the pool holds any.
func (b *Backend) sweep() {
	var dead []*Conn
	now := time.Now()
	b.mu.Lock()
	live := b.pool[:0]
	for _, c := range b.pool {
		c.sweeps++
		if time.Duration(c.sweeps)*sweepEvery < b.idleTimeout && c.alive() {
			if c.R != nil && now.Sub(c.idleSince) >= restAfter {
				c.rest()
			}
			live = append(live, c)
		} else {
			dead = append(dead, c)
		}
	}
	clear(b.pool[len(live):])
	b.pool = live
	b.sweeping = len(b.pool) > 0
	if b.sweeping {
		time.AfterFunc(sweepEvery, b.sweep)
	}
	b.mu.Unlock()
	for _, c := range dead {
		c.Close()
	}
}
