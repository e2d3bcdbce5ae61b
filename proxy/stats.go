package proxy

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// The proxy's counters: requests by service, status and method, and their
// durations, kept in shards so that connections do not write one cache
// line (a connection writes the shard of its number), summed when scraped
// (Stats). Nothing here is per request but atomic adds.

// DurationBuckets are the upper bounds, in seconds, of the request
// duration histogram.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

const statShards = 8

// methods counted by name; others are "OTHER".
var statMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"}

// statCodes are the status codes counted one by one; others by class.
var statCodeOf = func() (idx [600]uint8) {
	n := uint8(1) // 0: another code, counted as its class
	for code := 100; code < 600; code++ {
		if http.StatusText(code) != "" || code == statusCode499 {
			idx[code] = n
			n++
		}
	}
	return idx
}()

const statNumCodes = 80

type statShard struct {
	reqs    [len(statMethods)][statNumCodes]atomic.Uint64
	other   [len(statMethods)][6]atomic.Uint64 // codes without a name, by class 1xx..5xx
	buckets [12]atomic.Uint64                  // len(DurationBuckets) + +Inf
	sumNs   atomic.Uint64
	_       [64]byte
}

// serviceStats is one service's counters.
type serviceStats struct {
	shards [statShards]statShard
}

func methodIndex(m []byte) int {
	for i, name := range statMethods[:len(statMethods)-1] {
		if string(m) == name {
			return i
		}
	}
	return len(statMethods) - 1
}

// count records one request.
func (st *serviceStats) count(shard uint32, method []byte, code int, d time.Duration) {
	sh := &st.shards[shard%statShards]
	mi := methodIndex(method)
	if code >= 100 && code < 600 && statCodeOf[code] != 0 {
		sh.reqs[mi][statCodeOf[code]].Add(1)
	} else {
		sh.other[mi][min(max(code/100, 0), 5)].Add(1)
	}
	secs := d.Seconds()
	b := len(DurationBuckets)
	for i, ub := range DurationBuckets {
		if secs <= ub {
			b = i
			break
		}
	}
	sh.buckets[b].Add(1)
	sh.sumNs.Add(uint64(d))
}

// RequestCount is the number of requests of one method answered with one
// status code.
type RequestCount struct {
	Method string
	Code   string // "200"; "2xx" for a code without a name
	Count  uint64
}

// ServiceStats is what Stats returns for one service.
type ServiceStats struct {
	Service  string
	Requests []RequestCount
	// Buckets[i] counts requests of at most DurationBuckets[i] seconds
	// (cumulative), the last all of them.
	Buckets    []uint64
	SumSeconds float64
}

// Stats sums the counters of every service the proxy has routed.
func (s *Server) Stats() []ServiceStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	codes := make([]string, statNumCodes)
	for code := 100; code < 600; code++ {
		if i := statCodeOf[code]; i != 0 {
			codes[i] = strconv.Itoa(code)
		}
	}
	var out []ServiceStats
	for name, st := range s.stats {
		ss := ServiceStats{Service: name, Buckets: make([]uint64, len(DurationBuckets)+1)}
		var sum uint64
		for mi, m := range statMethods {
			for ci := 1; ci < statNumCodes; ci++ {
				if n := st.sumCode(mi, ci); n > 0 {
					ss.Requests = append(ss.Requests, RequestCount{Method: m, Code: codes[ci], Count: n})
				}
			}
			for class := range 6 {
				var n uint64
				for i := range st.shards {
					n += st.shards[i].other[mi][class].Load()
				}
				if n > 0 {
					ss.Requests = append(ss.Requests, RequestCount{Method: m, Code: strconv.Itoa(class) + "xx", Count: n})
				}
			}
		}
		var cum uint64
		for b := range ss.Buckets {
			for i := range st.shards {
				cum += st.shards[i].buckets[b].Load()
			}
			ss.Buckets[b] = cum
		}
		for i := range st.shards {
			sum += st.shards[i].sumNs.Load()
		}
		ss.SumSeconds = float64(sum) / float64(time.Second)
		out = append(out, ss)
	}
	return withBase(out, s.base)
}

func (st *serviceStats) sumCode(mi, ci int) uint64 {
	var n uint64
	for i := range st.shards {
		n += st.shards[i].reqs[mi][ci].Load()
	}
	return n
}

// statsFor is the counters of service name, made on first use (when a
// route to it is built, never per request).
func (s *Server) statsFor(name string) *serviceStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.stats == nil {
		s.stats = make(map[string]*serviceStats)
	}
	st := s.stats[name]
	if st == nil {
		st = new(serviceStats)
		s.stats[name] = st
	}
	return st
}

// OpenConnections is how many client connections each port has open now
// (HTTP/2 ones are not counted: net/http's server holds them); a port
// served with none has 0, so that its gauge reads 0 rather than vanish.
func (s *Server) OpenConnections() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := make(map[int]int)
	for _, port := range s.listeners {
		n[port] = 0
	}
	for c := range s.conns {
		n[c.port]++
	}
	return n
}

// ParkedConnections is how many client connections are parked now: idle,
// or quiet tunnels, holding no goroutine or buffer (park.go, tunnel.go).
func (s *Server) ParkedConnections() int { return s.parker.count() }

var connSeq atomic.Uint32

// SetBase makes base, the counters of the process this one replaced,
// part of what Stats returns, so that counters go on across an upgrade
// instead of starting from 0. A later base replaces an earlier one.
func (s *Server) SetBase(base []ServiceStats) {
	s.statsMu.Lock()
	s.base = base
	s.statsMu.Unlock()
}

// withBase adds base into own: the same service, method and code summed.
func withBase(own, base []ServiceStats) []ServiceStats {
	if len(base) == 0 {
		return own
	}
	byName := map[string]*ServiceStats{}
	out := make([]ServiceStats, 0, len(own)+len(base))
	for _, list := range [][]ServiceStats{own, base} {
		for _, st := range list {
			t := byName[st.Service]
			if t == nil {
				out = append(out, ServiceStats{Service: st.Service, Buckets: make([]uint64, len(DurationBuckets)+1)})
				t = &out[len(out)-1]
				byName[st.Service] = t
			}
			t.Requests = addCounts(t.Requests, st.Requests)
			for i := range t.Buckets {
				if i < len(st.Buckets) {
					t.Buckets[i] += st.Buckets[i]
				}
			}
			t.SumSeconds += st.SumSeconds
		}
	}
	return out
}

func addCounts(to, from []RequestCount) []RequestCount {
next:
	for _, rc := range from {
		for i := range to {
			if to[i].Method == rc.Method && to[i].Code == rc.Code {
				to[i].Count += rc.Count
				continue next
			}
		}
		to = append(to, rc)
	}
	return to
}
