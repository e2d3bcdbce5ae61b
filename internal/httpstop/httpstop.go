package httpstop

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Server is one http.Server serving one listener.
//
// Ownership: srv is the caller's until New and read-only after (net/http
// guards its own state); mu guards ln, stopping, served and open, which
// Serve, the stops and srv's ConnState hook touch; idle is closed, under
// mu, each time open falls to 0 after stopping began.
type Server struct {
	srv     *http.Server
	closing atomic.Bool // StopAccepting was called: answers say Connection: close

	mu       sync.Mutex
	ln       net.Listener  // what Serve was given; nil: not yet
	stopping bool          // StopAccepting was called
	served   chan struct{} // closed when Serve returns, or at stop if never called
	open     int           // connections accepted and not yet closed or hijacked
	idle     chan struct{} // closed when open is 0 after stopping; nil: not asked
}

// New wraps srv, whose ConnState hook it chains to its own. srv must not
// be served nor changed by anyone else from then on.
func New(srv *http.Server) *Server {
	s := &Server{srv: srv, served: make(chan struct{})}
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Keep-alives off only closes the connection after the answer; a
		// client that is told so does not send its next request on it.
		if s.closing.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
	hook := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		s.count(st)
		if hook != nil {
			hook(c, st)
		}
	}
	return s
}

// Serve answers requests on ln until StopAccepting or Stop, then returns
// nil; it returns the error that stopped it otherwise. It closes ln. It
// may be called once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	defer close(s.served)
	err := s.srv.Serve(ln)
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if errors.Is(err, http.ErrServerClosed) || stopping && errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// StopAccepting closes the listener Serve was given and the idle
// connections, and turns keep-alives off: every request in progress or
// still to come on an accepted connection is answered, and its connection
// closed after. It returns at once.
func (s *Server) StopAccepting() {
	// Before the listener closes: a connection accepted meanwhile must see
	// keep-alives off, so that it closes after its answer.
	s.closing.Store(true)
	s.srv.SetKeepAlivesEnabled(false)
	s.mu.Lock()
	first := !s.stopping
	s.stopping = true
	ln := s.ln
	s.mu.Unlock()
	if !first {
		return
	}
	if ln != nil {
		ln.Close()
	} else {
		close(s.served) // Serve will not serve
	}
}

// Stop stops accepting, waits until every accepted connection has had its
// answer and closed, or until ctx ends, and then closes whatever is left.
// It returns ctx's error if it had to close connections that were not
// done.
func (s *Server) Stop(ctx context.Context) error {
	s.StopAccepting()
	// Serve's accept loop has ended: every connection it accepted is
	// counted (net/http reports StateNew before serving a connection).
	var err error
	select {
	case <-s.served:
		select {
		case <-s.allClosed():
		case <-ctx.Done():
			err = ctx.Err()
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.srv.Close()
	return err
}

// count follows a connection's state: net/http reports StateNew once per
// accepted connection, and StateClosed or StateHijacked once at its end.
func (s *Server) count(st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.open++
	case http.StateClosed, http.StateHijacked:
		s.open--
		if s.open == 0 && s.idle != nil {
			close(s.idle)
			s.idle = nil
		}
	}
}

// allClosed returns a channel closed once no accepted connection is open.
func (s *Server) allClosed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.open == 0 {
		close(ch)
		return ch
	}
	if s.idle == nil {
		s.idle = ch
	}
	return s.idle
}
