package proxy

import (
	"crypto/tls"
	"errors"
	"syscall"
	"time"

	"smoothserve/upstream"
)

// Out of file descriptors (an accept, or a dial to an instance, failing
// with EMFILE or ENFILE), the proxy closes idle keep-alive connections to
// make room, those idle the longest first, as nginx reuses its idle
// keep-alive connections when it runs out of connections ("worker_connections
// are not enough, reusing connections"). Closing one is what its
// IdleTimeout does later anyway, and what a client of keep-alive must be
// ready for at any time; leaving a new client in the listen queue, or
// answering a request 502 for want of a connection to its instance, is
// worse. Only parked connections waiting for their next request are taken:
// not tunnels (WebSockets) nor streams, and not one whose client has sent
// bytes (its next request, which the parker wakes it for).

// shedBatch is how many idle connections one shortage closes at most, as
// nginx's ngx_drain_connections closes 32.
const shedBatch = 32

// outOfDescriptors reports whether err says that this process (EMFILE) or
// the system (ENFILE) has no file descriptor left.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// makeRoom closes up to shedBatch idle connections after err, an accept's
// or a dial's (at: which, and where) that ran out of descriptors at
// failed (unix nanos, taken as it failed), and reports whether
// there is room to try again: it closed some, their descriptors free when
// it returns, or another call did since failed (many connections run out
// at once; each closing a batch would close far more than they need). The
// log says so at most once a second.
func (s *Server) makeRoom(at string, err error, failed int64) bool {
	s.shedMu.Lock()
	defer s.shedMu.Unlock()
	if s.shedAt >= failed {
		return true
	}
	n := s.parker.shed(shedBatch)
	if n == 0 {
		return false
	}
	now := time.Now().UnixNano()
	s.shedAt = now
	total := s.shedTotal.Add(int64(n))
	if now-s.shedLogAt >= int64(time.Second) {
		s.shedLogAt = now
		s.opts.Logger.Warn("proxy: out of file descriptors; closed idle keep-alive connections, the longest idle first, to make room",
			"at", at, "err", err, "closed", n, "closed_since_start", total, "parked_left", s.parker.count())
	}
	return true
}

// ShedConnections is how many idle client connections this Server closed
// to free descriptors (makeRoom) since it began.
func (s *Server) ShedConnections() int64 { return s.shedTotal.Load() }

// get is b.Get, and a dial once more after making room if the process ran
// out of descriptors for it.
func (s *Server) get(b *upstream.Backend, maxIdle time.Duration) (*upstream.Conn, error) {
	uc, err := b.Get(maxIdle)
	if err != nil && outOfDescriptors(err) && s.makeRoom("connecting to "+b.Addr, err, time.Now().UnixNano()) {
		uc, err = b.Dial()
	}
	return uc, err
}

// dial is b.Dial, once more after making room if the process ran out of
// descriptors for it.
func (s *Server) dial(b *upstream.Backend) (*upstream.Conn, error) {
	uc, err := b.Dial()
	if err != nil && outOfDescriptors(err) && s.makeRoom("connecting to "+b.Addr, err, time.Now().UnixNano()) {
		uc, err = b.Dial()
	}
	return uc, err
}

// shed takes up to n parked connections waiting for their next request,
// the longest idle first, and closes them, their descriptors freed before
// it returns. It reports how many it closed.
func (p *parker) shed(n int) int {
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
		}
		c.closeParked()
	}
	return len(out)
}
