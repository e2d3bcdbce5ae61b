package proxy

// A connection arrives before it is served: its accept loop takes it, and
// a TLS one goes through its handshake on a goroutine of its own before it
// is a conn of the Server's or goes to the HTTP/2 server. Shutdown closes
// the listeners, but what arrived meanwhile was accepted: it is served,
// not closed unanswered. So Shutdown's wait (allClosed) counts the
// arrivals in progress, and the HTTP/2 servers are shut down (GOAWAY, and
// their listeners closed) only once none is left, so that a handshake that
// ends with h2 after Shutdown began still finds its server.

// arrive counts one more arrival in progress: a TLS handshake.
func (s *Server) arrive() {
	s.mu.Lock()
	s.arriving++
	s.mu.Unlock()
}

// arrivalOver ends an arrival: its connection is in conns, with the HTTP/2
// server, or closed; or its accept loop has returned.
func (s *Server) arrivalOver() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arriving--
	if s.arriving == 0 {
		for _, ch := range s.arrived {
			close(ch)
		}
		s.arrived = nil
	}
	s.checkDoneLocked()
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
