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
// guards its own state); closing is set once, by the first StopAccepting,
// before it takes mu; mu guards the rest, which Serve, the stops and srv's
// ConnState hook touch; idle is closed, under mu, when conns empties after
// stopping began.
type Server struct {
	srv     *http.Server
	closing atomic.Bool // StopAccepting was called: answers say Connection: close

	mu     sync.Mutex
	ln     net.Listener                // what Serve was given; nil: not yet
	served chan struct{}               // closed when Serve returns, or at stop if never called
	conns  map[net.Conn]http.ConnState // accepted, not yet closed nor hijacked: their state
	idle   chan struct{}               // closed when conns empties after stopping; nil: not asked
	forced error                       // a Stop ran out of time: what the next ones return at once
}

// New wraps srv, whose Handler and ConnState hook it chains to its own.
// srv must not be served nor changed by anyone else from then on.
func New(srv *http.Server) *Server {
	s := &Server{srv: srv, served: make(chan struct{}), conns: make(map[net.Conn]http.ConnState)}
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&closingWriter{ResponseWriter: w, s: s}, r)
	})
	hook := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		// The caller's hook first: once track has seen the last
		// connection close, Stop returns, and the hook has run.
		if hook != nil {
			hook(c, st)
		}
		s.track(c, st)
	}
	return s
}

// Serve answers requests on ln until StopAccepting or Stop, then returns
// nil; it returns the error that stopped it otherwise. It closes ln. It
// may be called once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	defer close(s.served)
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) || s.closing.Load() && errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// StopAccepting closes the listener Serve was given and the idle
// connections: every request in progress or still to come on an accepted
// connection is answered, and its connection closed after (a connection
// that goes idle from now on is closed then). It returns at once.
//
// Not net/http's SetKeepAlivesEnabled(false): it closes too a connection
// that has waited more than 5 s for its first request, as if it were idle,
// although ReadHeaderTimeout gives it longer.
func (s *Server) StopAccepting() {
	first := !s.closing.Swap(true)
	s.mu.Lock()
	ln := s.ln
	for c, st := range s.conns {
		if st == http.StateIdle {
			c.Close()
		}
	}
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
// done; a Stop after that returns the same at once.
func (s *Server) Stop(ctx context.Context) error {
	s.StopAccepting()
	s.mu.Lock()
	forced := s.forced
	s.mu.Unlock()
	if forced != nil {
		return forced
	}
	// Serve's accept loop has ended: every connection it accepted is
	// tracked (net/http reports StateNew before serving a connection).
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
	if err != nil {
		s.mu.Lock()
		s.forced = err
		s.mu.Unlock()
	}
	return err
}

// track follows a connection's state: net/http reports StateNew once per
// accepted connection, and StateClosed or StateHijacked once at its end.
// One that goes idle once stopping began is closed.
func (s *Server) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
		if len(s.conns) == 0 && s.idle != nil {
			close(s.idle)
			s.idle = nil
		}
	case http.StateIdle:
		if s.closing.Load() {
			c.Close()
		}
		fallthrough
	default:
		s.conns[c] = st
	}
}

// allClosed returns a channel closed once no accepted connection is open.
func (s *Server) allClosed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	return s.idle
}

// closingWriter says Connection: close in an answer whose head is written
// once stopping began: its connection is closed after it (net/http closes
// one whose answer says so), and a client that is told does not send its
// next request on it. Handlers reach the writer beneath through
// http.ResponseController (Unwrap).
type closingWriter struct {
	http.ResponseWriter
	s      *Server
	headed bool
}

func (w *closingWriter) head(code int) {
	if w.headed || code < 200 {
		return
	}
	w.headed = true
	if w.s.closing.Load() {
		w.Header().Set("Connection", "close")
	}
}

func (w *closingWriter) WriteHeader(code int) {
	w.head(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(p []byte) (int, error) {
	w.head(http.StatusOK)
	return w.ResponseWriter.Write(p)
}

func (w *closingWriter) Flush() {
	w.head(http.StatusOK)
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
