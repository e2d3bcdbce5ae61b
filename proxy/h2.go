package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP/2 (ALPN h2 on the HTTPS port) is served by net/http's server, one
// per HTTPS port (and, while a drain retires one, those it retired), fed
// the connections whose handshake chose h2; each stream is bridged to an
// instance over HTTP/1.1 (h2bridge.go). At a shutdown or an upgrade, its
// connections get GOAWAY and finish their streams: a TLS connection's
// state is this process's, it is not passed.

// h2Front is the HTTP/2 serving of one HTTPS port: the server new
// connections go to, and those a drain retired (drain.go), each finishing
// its connections after their GOAWAY.
//
// Ownership: cur and retired are the Server's, changed under its mu; cur
// is read without it (serve).
type h2Front struct {
	s       *Server
	port    int
	cur     atomic.Pointer[h2Server]
	retired map[*h2Server]struct{}
}

// h2Server is one of net/http's HTTP/2 servers and what it serves.
type h2Server struct {
	srv    *http.Server
	ln     *connListener
	states h2States // for draining and shutting down (drain.go)
	// arrivedAt is when srv last took a connection (its StateNew; unix
	// nanos), for the settling before its GOAWAYs.
	arrivedAt atomic.Int64
	served    chan struct{} // closed when srv.Serve has returned
	rotating  atomic.Bool   // a draining port's rotate of it is due
}

// h2Settle is how long a new HTTP/2 connection gets before net/http's
// GOAWAY at a shutdown or a drain. A client sends its first request with
// its handshake's last flight; a GOAWAY sent before the server read it
// names stream 0, and the request is refused (to be sent again elsewhere,
// RFC 9113 §8.7: clients do, but a strict one counts it lost). The first
// GOAWAY (h2goaway.go), which refuses nothing, it gets at once.
const h2Settle = 100 * time.Millisecond

// h2For returns the HTTP/2 serving of HTTPS port port, started on first
// use.
func (s *Server) h2For(port int) *h2Front {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.h2[port]; h != nil {
		return h
	}
	h := &h2Front{s: s, port: port, retired: make(map[*h2Server]struct{})}
	h.cur.Store(h.startLocked())
	if s.h2 == nil {
		s.h2 = make(map[int]*h2Front)
	}
	s.h2[port] = h
	return h
}

// startLocked starts an HTTP/2 server for h's port; the caller holds s.mu.
func (h *h2Front) startLocked() *h2Server {
	s := h.s
	sv := &h2Server{ln: newConnListener(), served: make(chan struct{})}
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	sv.srv = &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: s.opts.HeaderTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
		// Idle connections are tracked for draining, and a new one counts
		// towards the parker's trim (parker.countH2).
		ConnState: func(nc net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.parker.countH2()
			}
			sv.states.connState(nc, st)
			if st == http.StateNew {
				if sv.states.onRequest.Load() && !sv.rotating.Swap(true) {
					time.AfterFunc(lastCall, func() { h.rotate(sv) })
				}
				sv.arrivedAt.Store(time.Now().UnixNano()) // last: Serve goes on to serve it
			}
		},
		// No dynamic table for the answers' header fields: nginx's
		// encoder sets its size to 0, HAProxy's fills none. 1 byte holds
		// no field (0 would be Go's default, 4 KiB, which keeps the last
		// answers' fields in each connection: some 1.4 KiB of an idle
		// one's memory); the first answer says so with a table size
		// update. The requests' table, the clients' to fill, stays at 4
		// KiB: it saves their cookies' bytes on every request.
		//
		// A connection whose client reads nothing (its socket full) is
		// closed once nothing could be written for IdleTimeout, as an
		// HTTP/1.1 one's write deadline closes it; a stream whose client
		// opens no window is reset then (countingResponse.deadline).
		HTTP2: &http.HTTP2Config{MaxEncoderHeaderTableSize: 1, WriteByteTimeout: s.opts.IdleTimeout},
	}
	if err := sv.wrapH2(); err != nil {
		// Another net/http than this build's: served all the same, told
		// to go with net/http's one GOAWAY.
		s.opts.Logger.Warn("proxy: HTTP/2 connections get one GOAWAY, not two", "port", h.port, "err", err)
	}
	// Draining, a new connection is told to go at its first request,
	// and again as its server is retired (rotate).
	sv.states.onRequest.Store(s.draining.Load())
	if s.shutting.Load() {
		sv.ln.Close() // Shutdown or Close ran: Serve returns at once, as accept refuses the port
	}
	go func() {
		sv.srv.Serve(sv.ln)
		close(sv.served)
	}()
	return sv
}

// serve hands a TLS connection that chose h2 to the current HTTP/2
// server; to the next, if a drain retires that one meanwhile.
func (h *h2Front) serve(tc *tls.Conn) {
	for {
		sv := h.cur.Load()
		select {
		case sv.ln.ch <- tc:
			return
		case <-sv.ln.done:
			if h.cur.Load() == sv { // Shutdown or Close
				tc.Close()
				return
			}
		}
	}
}

// h2Servers is every HTTP/2 server, current and retired, for shutting
// them down.
func (s *Server) h2Servers() []*h2Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	var svs []*h2Server
	for _, h := range s.h2 {
		svs = append(svs, h.cur.Load())
		for sv := range h.retired {
			svs = append(svs, sv)
		}
	}
	return svs
}

// settle readies sv for its GOAWAYs: it closes sv's listener (a
// connection on its way goes to the current server, or is closed at a
// shutdown: serve) and waits for its Serve to return, so that every
// connection Serve took has had its StateNew and arrivedAt is final, however
// late Serve took it; then it waits until the newest connection has had
// h2Settle and, if sv has connections, lastCall has passed since began (a
// drain or shutdown), at most half the time ctx leaves from then; or until
// ctx is done.
func (sv *h2Server) settle(ctx context.Context, began time.Time) {
	sv.ln.Close()
	<-sv.served
	until := time.Unix(0, sv.arrivedAt.Load()).Add(h2Settle)
	quiet := lastCall
	if dl, ok := ctx.Deadline(); ok {
		quiet = min(quiet, dl.Sub(began)/2)
	}
	if q := began.Add(quiet); q.After(until) && !sv.states.empty() {
		until = q
	}
	wait := time.Until(until)
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// shutdownH2 sends GOAWAY on every HTTP/2 connection and waits for their
// streams, until ctx is done: then it closes them. The first GOAWAYs
// (h2goaway.go) go at once, also to the connections of TLS handshakes in
// progress as they come; net/http's wait for those handshakes
// (arrivals.go), for the newest connection to settle (h2Settle), and for
// lastCall. A connection that reaches net/http's server just as its
// Shutdown sends them (it is not yet among the connections Shutdown
// tells) gets its GOAWAY as its streams end (keep-alives off).
func (s *Server) shutdownH2(ctx context.Context) {
	for _, sv := range s.h2Servers() {
		sv.states.tellAll()
	}
	select {
	case <-s.arrivals():
	case <-ctx.Done():
	}
	var wg sync.WaitGroup
	for _, sv := range s.h2Servers() {
		wg.Go(func() {
			// No arrival is left (or ctx is done).
			sv.settle(ctx, time.Unix(0, s.shutdownAt.Load()))
			sv.srv.SetKeepAlivesEnabled(false) // one Serve hands on late gets its GOAWAY after its streams
			// A connection that has not sent its preface by the end of
			// the grace (and h2Settle) is closed, as a plain one without
			// its first request is: net/http would send its GOAWAY only
			// after the preface, and wait 10 s for that.
			silent := time.AfterFunc(time.Until(s.graceEnd().Add(h2Settle)), func() { sv.states.closeIn(http.StateNew) })
			if sv.srv.Shutdown(ctx) != nil {
				sv.srv.Close()
			}
			silent.Stop()
		})
	}
	wg.Wait()
}

// connListener is a net.Listener of connections accepted (and handshaken)
// elsewhere.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// h2Grace bounds how long an HTTP/2 connection may take to finish its
// streams after GOAWAY at a shutdown, within the shutdown's own limit.
const h2Grace = 30 * time.Second
