package proxy

import (
	"crypto/tls"
	"time"
)

// A connection arrives before it is served: its accept loop takes it, and
// a TLS one goes through its handshake on a goroutine of its own before it
// is a conn of the Server's or goes to the HTTP/2 server. Shutdown closes
// the listeners, but what arrived meanwhile was accepted: it is served,
// not closed unanswered. So Shutdown's wait (allClosed) counts the
// arrivals in progress, and the HTTP/2 servers are shut down (GOAWAY, and
// their listeners closed) only once none is left, so that a handshake that
// ends with h2 after Shutdown began still finds its server. A handshake
// gets ShutdownGrace to end, as a plain connection gets it for its first
// request; a Shutdown that runs out of time, and Close, cut the handshakes
// short: nothing is served once they have returned.

// arrive counts one more arrival in progress: tc's TLS handshake, which
// must end by deadline (set on tc already).
func (s *Server) arrive(tc *tls.Conn, deadline time.Time) {
	s.mu.Lock()
	s.arriving++
	s.handshaking[tc] = deadline
	switch {
	case s.cut:
		tc.NetConn().Close() // it could not be served
	case s.shutting.Load():
		s.graceLocked(tc, deadline)
	}
	s.mu.Unlock()
}

// handshaken says tc's handshake is over; its arrival is, once its
// connection is served (arrivalOver).
func (s *Server) handshaken(tc *tls.Conn) {
	s.mu.Lock()
	delete(s.handshaking, tc)
	s.mu.Unlock()
}

// graceLocked brings tc's handshake deadline to the end of Shutdown's
// grace, if that is sooner.
func (s *Server) graceLocked(tc *tls.Conn, deadline time.Time) {
	if grace := s.graceEnd(); grace.Before(deadline) {
		tc.SetDeadline(grace)
	}
}

// graceEnd is when Shutdown's grace ends (once it began).
func (s *Server) graceEnd() time.Time {
	return time.Unix(0, s.shutdownAt.Load()).Add(s.opts.ShutdownGrace)
}

// graceArrivalsLocked gives the handshakes in progress ShutdownGrace.
func (s *Server) graceArrivalsLocked() {
	for tc, deadline := range s.handshaking {
		s.graceLocked(tc, deadline)
	}
}

// arrivalOver ends an arrival: tc's (nil: an accept loop's). Its
// connection is in conns, with the HTTP/2 server, or closed; or its accept
// loop has returned.
func (s *Server) arrivalOver(tc *tls.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arriving--
	delete(s.handshaking, tc)
	if s.arriving == 0 {
		for _, ch := range s.arrived {
			close(ch)
		}
		s.arrived = nil
	}
	s.checkDoneLocked()
}

// cutArrivalsLocked closes the connections in their handshake; from now
// on newConn closes one whose handshake ended.
func (s *Server) cutArrivalsLocked() {
	s.cut = true
	for tc := range s.handshaking {
		tc.NetConn().Close()
	}
}

// arrivals returns a channel closed once no arrival is in progress. Only
// after Shutdown closed the listeners does that last: each accept loop
// counts as one until it returns.
func (s *Server) arrivals() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.arriving == 0 {
		close(ch)
	} else {
		s.arrived = append(s.arrived, ch)
	}
	return ch
}
