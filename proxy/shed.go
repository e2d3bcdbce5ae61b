package proxy

import (
	"crypto/tls"
	"time"

	"smoothserve/internal/nofile"
	"smoothserve/upstream"
)

// Out of file descriptors (an accept, or a dial to an instance, failing
// with EMFILE or ENFILE), the proxy makes room and tries again at once,
// as nginx reuses its idle keep-alive connections when it runs out of
// connections: first the pooled connections to the instances unused for
// a second or more (no client sees those go), then the client connections
// idle the longest. Closing an idle keep-alive connection is what its
// IdleTimeout does later anyway, and what a client of keep-alive must be
// ready for at any time; leaving a new client in the listen queue, or
// answering a request 502 for want of a connection to its instance, is
// worse. Of the clients' only parked connections waiting for their next
// request are taken: not tunnels (WebSockets) nor streams, and not one
// whose client has sent bytes (its next request, which the parker wakes
// it for).

const (
	// shedBatch is how many descriptors one shortage frees at most, as
	// nginx's ngx_drain_connections closes 32 connections.
	shedBatch = 32
	// poolIdleShed is how long a pooled connection to an instance has
	// been unused before a shortage closes it: the pool keeps those in
	// use lately, which the next requests would dial again.
	poolIdleShed = time.Second
	// roomTries bounds the dials of one request made again after room
	// was made: concurrent shortages share what one makeRoom freed.
	roomTries = 8
)

// makeRoom frees up to shedBatch descriptors after err, an accept's or a
// dial's (at: which, and where) that ran out of them, tried when the room
// made so far was gen (shedGen, read before the try), and reports whether
// there is room to try again: it freed some, or another call did since
// gen (many connections run out at once; each freeing a batch would close
// far more than they need). The log says so at most once a second.
func (s *Server) makeRoom(at string, err error, gen uint64) bool {
	s.shedMu.Lock()
	defer s.shedMu.Unlock()
	if s.shedGen.Load() != gen {
		return true
	}
	pooled := s.shedPools(shedBatch)
	clients := s.parker.shed(shedBatch - pooled)
	if pooled+clients == 0 {
		return false
	}
	s.shedGen.Add(1)
	total := s.shedTotal.Add(int64(clients))
	if now := time.Now(); now.Sub(s.shedLogAt) >= time.Second {
		s.shedLogAt = now
		s.opts.Logger.Warn("proxy: out of file descriptors; closed idle connections, the longest idle first, to make room",
			"at", at, "err", err, "instance_conns_closed", pooled, "client_conns_closed", clients,
			"client_conns_closed_since_start", total, "parked_left", s.parker.count())
	}
	return true
}

// shedPools closes up to n pooled connections to the instances unused for
// poolIdleShed, and reports how many.
func (s *Server) shedPools(n int) int {
	closed := 0
	seen := make(map[*upstream.Set]bool)
	for _, pt := range s.routes.Load().ports {
		for _, t := range pt.targets() {
			if t.set == nil || seen[t.set] {
				continue
			}
			seen[t.set] = true
			for _, b := range t.set.Backends() {
				if closed == n {
					return closed
				}
				closed += b.CloseIdleFor(poolIdleShed, n-closed)
			}
		}
	}
	return closed
}

// MakeRoom is makeRoom for a descriptor this process needs elsewhere (the
// supervisor's probes of its instances): at says which, err is the
// failure. It reports whether there is room to try again.
func (s *Server) MakeRoom(at string, err error) bool {
	return s.makeRoom(at, err, s.shedGen.Load())
}

// ShedConnections is how many idle client connections this Server closed
// to free descriptors (makeRoom) since it began.
func (s *Server) ShedConnections() int64 { return s.shedTotal.Load() }

// get is b.Get, made again (at most roomTries times) while the process
// has no descriptor left for it and room can be made: a pooled connection
// put back meanwhile serves too.
func (s *Server) get(b *upstream.Backend, maxIdle time.Duration) (*upstream.Conn, error) {
	return s.connect(b, maxIdle, false)
}

// dial is b.Dial, made again as get makes b.Get.
func (s *Server) dial(b *upstream.Backend) (*upstream.Conn, error) {
	return s.connect(b, 0, true)
}

// connect is get, or dial when fresh.
func (s *Server) connect(b *upstream.Backend, maxIdle time.Duration, fresh bool) (uc *upstream.Conn, err error) {
	for try := 0; ; try++ {
		gen := s.shedGen.Load()
		if fresh {
			uc, err = b.Dial()
		} else {
			uc, err = b.Get(maxIdle)
		}
		if err == nil || try == roomTries || !nofile.Exhausted(err) || !s.makeRoom("connecting to "+b.Addr, err, gen) {
			return uc, err
		}
	}
}

// shed takes up to n parked connections waiting for their next request,
// the longest idle first, and closes them, their descriptors freed before
// it returns. It reports how many it closed.
func (p *parker) shed(n int) int {
	if n <= 0 {
		return 0
	}
	p.mu.Lock()
	oldest := make([]*conn, 0, n) // the n idle the longest, oldest first
	for _, c := range p.slots {
		if c == nil || c.tn != nil || c.strm != nil {
			continue
		}
		if len(oldest) == n && !c.idleSince.Before(oldest[n-1].idleSince) {
			continue
		}
		i := len(oldest)
		if i < n {
			oldest = append(oldest, nil)
		} else {
			i = n - 1
		}
		for ; i > 0 && c.idleSince.Before(oldest[i-1].idleSince); i-- {
			oldest[i] = oldest[i-1]
		}
		oldest[i] = c
	}
	out := oldest[:0]
	for _, c := range oldest {
		if c.clientSent() { // its next request came: the parker wakes it
			continue
		}
		p.removeLocked(c)
		out = append(out, c)
	}
	p.mu.Unlock()
	for _, c := range out {
		if tc, ok := c.nc.(*tls.Conn); ok {
			// Its descriptor free now, not once a close_notify has gone
			// out (closeParked writes it on a goroutine, and it waits for
			// a client that reads nothing): between requests, the end of
			// the TCP connection is all a client needs to see.
			tc.NetConn().Close()
			c.closeParkedNow() // its close_notify fails at once
			continue
		}
		c.closeParked()
	}
	return len(out)
}
