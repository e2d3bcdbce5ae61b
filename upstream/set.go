package upstream

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Set is the rotation of one service: the instances that take new requests.
//
// Ownership: readers load the rotation through an atomic pointer and never
// block; writers (Add, Remove, SetStopped) serialise on mu, which also guards
// readyCh.
type Set struct {
	Name string

	rotation atomic.Pointer[[]*Backend] // immutable once published
	next     atomic.Uint32              // where the next pick starts, for turns among ties
	stopped  atomic.Bool

	// StartTimeout is how long a request waits for an instance when none
	// is in rotation; zero means it does not wait.
	startTimeout atomic.Int64
	// maxBodySize is the largest request body forwarded; zero: no limit.
	maxBodySize atomic.Int64
	compress    atomic.Bool // compress responses (compress)
	// headTimeout is how long an instance has to begin its answer; zero:
	// no limit.
	headTimeout atomic.Int64

	mu      sync.Mutex
	readyCh chan struct{} // closed (and replaced) when the rotation gains a backend or the set stops
}

// NewSet returns an empty rotation for the service name.
func NewSet(name string, startTimeout time.Duration) *Set {
	s := &Set{Name: name, readyCh: make(chan struct{})}
	s.startTimeout.Store(int64(startTimeout))
	empty := []*Backend{}
	s.rotation.Store(&empty)
	return s
}

// SetStartTimeout changes how long requests wait for an instance.
func (s *Set) SetStartTimeout(d time.Duration) { s.startTimeout.Store(int64(d)) }

// SetResponseHeaderTimeout sets how long an instance has, from the request
// sent, to begin its answer (zero: no limit).
func (s *Set) SetResponseHeaderTimeout(d time.Duration) { s.headTimeout.Store(int64(d)) }

// ResponseHeaderTimeout is how long an instance has to begin its answer;
// zero means no limit.
func (s *Set) ResponseHeaderTimeout() time.Duration { return time.Duration(s.headTimeout.Load()) }

// SetMaxBodySize sets the largest request body the proxy forwards to this
// service (zero: no limit).
func (s *Set) SetMaxBodySize(n int64) { s.maxBodySize.Store(n) }

// SetCompress says whether the proxy compresses this service's responses
// (compress).
func (s *Set) SetCompress(on bool) { s.compress.Store(on) }

// Compress reports whether the proxy compresses this service's responses.
func (s *Set) Compress() bool { return s.compress.Load() }

// MaxBodySize is the largest request body forwarded; zero means no limit.
func (s *Set) MaxBodySize() int64 { return s.maxBodySize.Load() }

// StartTimeout is how long a request waits for an instance when none is ready.
func (s *Set) StartTimeout() time.Duration { return time.Duration(s.startTimeout.Load()) }

// Backends returns the backends in rotation (do not modify).
func (s *Set) Backends() []*Backend { return *s.rotation.Load() }

// Add puts b into rotation.
func (s *Set) Add(b *Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.rotation.Load()
	for _, x := range old {
		if x == b {
			return
		}
	}
	next := make([]*Backend, 0, len(old)+1)
	next = append(next, old...)
	next = append(next, b)
	s.rotation.Store(&next)
	close(s.readyCh)
	s.readyCh = make(chan struct{})
}

// Remove takes b out of rotation and starts its drain: no request is sent to
// it after Remove returns, but for those already counted.
func (s *Set) Remove(b *Backend) {
	b.Drain()
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.rotation.Load()
	next := make([]*Backend, 0, len(old))
	for _, x := range old {
		if x != b {
			next = append(next, x)
		}
	}
	s.rotation.Store(&next)
}

// SetStopped marks the service stopped (requests get 503 at once, without
// waiting) or started again.
func (s *Set) SetStopped(stopped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped.Store(stopped)
	close(s.readyCh)
	s.readyCh = make(chan struct{})
}

// Stopped reports whether the service was stopped by the operator.
func (s *Set) Stopped() bool { return s.stopped.Load() }

// Tried lists the backends a request has already failed on.
type Tried struct {
	n  int
	bs [4]*Backend
}

// Add records b; past four, the oldest entries are forgotten.
func (t *Tried) Add(b *Backend) {
	t.bs[t.n%len(t.bs)] = b
	t.n++
}

// AnyDraining reports whether a backend the request failed on has left
// rotation since (the supervisor saw its instance die).
func (t *Tried) AnyDraining() bool {
	for _, b := range t.bs {
		if b != nil && b.Draining() {
			return true
		}
	}
	return false
}

func (t *Tried) has(b *Backend) bool {
	for _, x := range t.bs {
		if x == b {
			return true
		}
	}
	return false
}

// Pick counts a request against the ready backend with the fewest requests
// in flight, skipping those in tried, ties taken in turn. It returns nil when
// no backend is available; the caller must Release what it got.
func (s *Set) Pick(tried *Tried) *Backend {
	for {
		rot := *s.rotation.Load()
		n := len(rot)
		if n == 0 {
			return nil
		}
		start := int(s.next.Add(1) % uint32(n))
		var best *Backend
		var bestLoad int64
		for i := 0; i < n; i++ {
			j := start + i
			if j >= n {
				j -= n
			}
			b := rot[j]
			if tried != nil && tried.has(b) {
				continue
			}
			if l := b.inflight.Load(); best == nil || l < bestLoad {
				best, bestLoad = b, l
			}
		}
		if best == nil {
			return nil
		}
		if best.acquire() {
			return best
		}
		// best began draining between the load and the count: the
		// rotation has changed or is about to; look again.
		s.waitRotationChange(rot)
	}
}

// waitRotationChange yields until the published rotation is no longer rot.
// Drain is followed at once by Remove, so this is a short spin.
func (s *Set) waitRotationChange(rot []*Backend) {
	for i := 0; i < 1000; i++ {
		cur := *s.rotation.Load()
		if len(cur) != len(rot) || (len(cur) > 0 && &cur[0] != &rot[0]) {
			return
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// Wait blocks until the rotation holds a backend not in tried, the service
// is stopped, or ctx is done. It reports whether it is worth picking again.
func (s *Set) Wait(ctx context.Context, tried *Tried) bool {
	for {
		s.mu.Lock()
		ch := s.readyCh
		s.mu.Unlock()
		if s.stopped.Load() {
			return false
		}
		for _, b := range *s.rotation.Load() {
			if tried == nil || !tried.has(b) {
				return true
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}
