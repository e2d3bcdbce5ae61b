package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Draining sends clients elsewhere without refusing any (a host being
// taken out of a load balancer's rotation): every HTTP/1.x response says
// Connection: close and its connection closes once it is answered, a
// connection waiting for its next request is closed after its last call
// (lastCall) unless its client asks meanwhile, and every HTTP/2
// connection gets GOAWAY, an idle one too, and closes once its streams
// are done. New connections are still served: an HTTP/1.x one a request,
// an HTTP/2 one until about a second after its first (rotate). It is
// independent of Shutdown and PassConnections, and costs a request one
// atomic load (closing).

// lastCall is how long draining leaves an HTTP/1.x connection idle at
// that moment to ask before it is closed: a client that sends one request
// at a time and asks meanwhile is answered, and told with the answer
// (Connection: close); closing it as its next request is on its way
// would lose that request. What is left is that race for a client quiet
// for a second, which is when it is closed. It is also how long an
// HTTP/2 connection has between its two GOAWAYs (h2goaway.go): the
// first, at once, stops its client opening streams; the second, which
// refuses those on their way, comes when they can no longer be.
const lastCall = time.Second

// errDraining ends the wait for the next request of a draining server.
var errDraining = errors.New("proxy: draining")

// SetDraining(true) sends clients elsewhere without refusing them: from
// then on every response (HTTP/1.x) carries Connection: close, connections
// waiting for their next request are closed (parked ones at once, idle for
// a second or more; others after lastCall, unless asked first), and a
// connection answering a request closes once it is answered; HTTP/2
// connections get GOAWAY, idle ones too (h2Front.drain). New
// connections are still accepted and served (HTTP/1.x one request each;
// HTTP/2 told to go at their first request, retired a second later).
// SetDraining(false) undoes it for what comes after. Idempotent; the
// DrainClosed count starts again only when draining begins.
func (s *Server) SetDraining(on bool) {
	s.drainMu.Lock() // the HTTP/2 fronts turned in the order of the calls
	defer s.drainMu.Unlock()
	s.mu.Lock()
	was := s.draining.Load()
	if on && !was {
		s.drainClosed.Store(0)
	}
	// Before the connections are looked at, as Shutdown's flag: a
	// connection that becomes idle after the loop sees it.
	s.draining.Store(on)
	var parked []*conn
	// Once Shutdown began, its deadlines and hand-over stand: a last call
	// would hold an idle connection a second past its turn to be passed.
	if on && !was && !s.shutting.Load() {
		now := time.Now()
		for c := range s.conns {
			switch c.state.Load() {
			case stateIdle:
				// Its last call. Not through c's deadline cache: its
				// goroutine owns that (a deadline of its own nearer than
				// this is put off, by less than lastCall).
				c.nc.SetReadDeadline(now.Add(lastCall))
			case stateParked:
				// One not taken is on its way back, and sees the flag.
				if s.parker.take(c) {
					parked = append(parked, c)
				}
			}
		}
	}
	hs := make([]*h2Front, 0, len(s.h2))
	for _, h := range s.h2 {
		hs = append(hs, h)
	}
	s.mu.Unlock()
	for _, c := range parked {
		if c.strm != nil || c.tn != nil {
			// Woken and parked again as a stream or tunnel between the
			// look at its state and the take: draining leaves those be.
			go c.wake()
			continue
		}
		if c.rec.start.IsZero() || c.clientSent() { // no request yet, or one on its way: it gets one
			go c.serve()
			continue
		}
		c.closeParked()
		s.drainClosed.Add(1)
	}
	for _, h := range hs {
		switch {
		case on && !was:
			h.drain()
		case !on:
			h.undrain()
		}
	}
}

// drainingOnly reports whether s is draining and not shutting down.
func (s *Server) drainingOnly() bool { return s.draining.Load() && !s.shutting.Load() }

// DrainClosed is how many client connections were closed because of
// draining since the last SetDraining(true) that began it.
func (s *Server) DrainClosed() int64 { return s.drainClosed.Load() }

// InFlight is the number of requests being answered right now, HTTP/1.x
// and HTTP/2, all services. It looks at every connection (under the lock
// taken when one opens or closes): meant for a drain's polling, not for
// every request.
func (s *Server) InFlight() int64 {
	n := s.h2Streams.Load()
	s.mu.Lock()
	for c := range s.conns {
		if c.state.Load() == stateActive {
			n++
		}
	}
	s.mu.Unlock()
	return n
}

// h2States tracks an HTTP/2 server's connections and the state of each:
// which are idle, for draining to count those it tells to go, and which
// have not yet sent their preface, for a shutdown to close those after
// its grace (h2.go). A
// connection's entry is made at StateNew and dropped when it closes, once
// each; between, its state changes when it reads its preface, and when it
// goes from no stream to one and back, which sets its entry: a
// lookup that takes no lock, so that the requests of different
// connections share none, nor a cache line (h2State).
type h2States struct {
	conns   sync.Map    // the *tls.Conn → *h2State
	leaving atomic.Bool // tellAll ran: a connection served from now on is told at once
	// onRequest: the server is a draining port's current one; a
	// connection is told at its first request (rotate).
	onRequest atomic.Bool
}

// h2State is a connection's http.ConnState (New, Active or Idle; the
// zero value is New), alone on its cache line: the entries are made one
// after another on net/http's accepting goroutine, and would otherwise
// lie side by side, a line shared by the requests of up to 16
// connections.
type h2State struct {
	state atomic.Int32
	hc    atomic.Pointer[h2Conn] // once net/http serves it (h2goaway.go)
	_     [48]byte
}

func (f *h2State) is(st http.ConnState) bool { return f.state.Load() == int32(st) }

func (t *h2States) connState(nc net.Conn, st http.ConnState) {
	hc, _ := nc.(*h2Conn) // net/http's HTTP/2 server names it so
	if hc != nil {
		nc = hc.Conn
	}
	switch st {
	case http.StateNew:
		t.conns.Store(nc, new(h2State))
	case http.StateIdle, http.StateActive:
		f, ok := t.conns.Load(nc)
		if !ok {
			return
		}
		// net/http's server goes Active and Idle as it starts serving;
		// from Idle to Active is a stream's start.
		was := f.(*h2State).state.Swap(int32(st))
		if st == http.StateActive && was == int32(http.StateIdle) && hc != nil && t.onRequest.Load() {
			hc.tell()
		}
	default:
		t.conns.Delete(nc)
	}
}

// serving records that net/http serves tc as hc, and tells it to go if
// tellAll ran.
func (t *h2States) serving(tc *tls.Conn, hc *h2Conn) {
	if f, ok := t.conns.Load(tc); ok {
		f.(*h2State).hc.Store(hc)
	}
	if t.leaving.Load() { // after the Store: tellAll sees hc, or this sees the flag
		hc.tell()
	}
}

// tellAll sends every connection served, and every one served from now
// on, its first GOAWAY (h2goaway.go).
func (t *h2States) tellAll() {
	t.leaving.Store(true)
	t.conns.Range(func(_, f any) bool {
		if hc := f.(*h2State).hc.Load(); hc != nil {
			hc.tell()
		}
		return true
	})
}

// count is how many connections are in state st.
func (t *h2States) count(st http.ConnState) int64 { return t.each(st, func(net.Conn) {}) }

// empty reports whether there is no connection.
func (t *h2States) empty() bool {
	empty := true
	t.conns.Range(func(any, any) bool { empty = false; return false })
	return empty
}

// closeIn closes the connections in state st.
func (t *h2States) closeIn(st http.ConnState) {
	t.each(st, func(nc net.Conn) { nc.Close() })
}

// each calls fn with every connection in state st and returns how many.
func (t *h2States) each(st http.ConnState, fn func(net.Conn)) int64 {
	var n int64
	t.conns.Range(func(nc, f any) bool {
		if f.(*h2State).is(st) {
			fn(nc.(net.Conn))
			n++
		}
		return true
	})
	return n
}

// drain retires the current HTTP/2 server (retire); a new one takes the
// connections that come from now on, each told to go at its first request
// and retired (rotate) lastCall after the first came. Once Shutdown began
// it does nothing: Shutdown's GOAWAYs reach every connection.
func (h *h2Front) drain() {
	s := h.s
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return
	}
	old := h.swapLocked()
	s.mu.Unlock()
	h.retire(old)
}

// rotate retires sv, a server that was a draining port's current one when
// its first connection came, if it is still current, draining or not (an
// undrain since leaves those told at their first request to be closed):
// its connections, told to go at their first request (h2States.onRequest),
// get net/http's GOAWAY lastCall later, as those of a drain's start do.
// A connection to a draining host is served until then, its requests on
// their way too, and its client is sent elsewhere.
func (h *h2Front) rotate(sv *h2Server) {
	s := h.s
	s.mu.Lock()
	if s.shutting.Load() || h.cur.Load() != sv {
		s.mu.Unlock()
		return
	}
	h.swapLocked()
	s.mu.Unlock()
	h.retire(sv)
}

// swapLocked starts a new current server and returns the one it replaces,
// retired; the caller holds s.mu and retires it (retire).
func (h *h2Front) swapLocked() *h2Server {
	old := h.cur.Load()
	h.cur.Store(h.startLocked())
	h.retired[old] = struct{}{}
	return old
}

// retire tells each of old's connections to go: at once (tellAll's first
// GOAWAY), and lastCall later (settle) with net/http's graceful
// shutdown's, naming the last stream served. A connection told to go
// closes once its streams are done and its client has had a second to
// read the GOAWAY (net/http's); a request it sent after the second GOAWAY
// is refused, and the client knows to send it elsewhere. An idle
// connection is counted as closed by the drain.
func (h *h2Front) retire(old *h2Server) {
	s := h.s
	old.states.tellAll()
	s.drainClosed.Add(old.states.count(http.StateIdle))
	began := time.Now()
	go func() {
		old.settle(context.Background(), began)
		old.srv.SetKeepAlivesEnabled(false) // one Serve hands on late gets its GOAWAY after its streams
		// It returns once every connection closed (or Close closed them).
		old.srv.Shutdown(context.Background())
		s.mu.Lock()
		delete(h.retired, old)
		s.mu.Unlock()
	}()
}

// undrain stops telling the current HTTP/2 server's connections to go at
// their first request (a rotation due finds the port undrained); a
// retired one goes on retiring.
func (h *h2Front) undrain() {
	h.cur.Load().states.onRequest.Store(false) // h.s.drainMu orders it after drain's swap
}
