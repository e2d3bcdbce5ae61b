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
// per HTTPS port, fed the connections whose handshake chose h2; each
// stream is bridged to an instance over HTTP/1.1 (h2bridge.go). At a
// shutdown or an upgrade, its connections get GOAWAY and finish their
// streams: a TLS connection's state is this process's, it is not passed.

// h2Front is the HTTP/2 server of one HTTPS port.
type h2Front struct {
	s      *Server
	port   int
	srv    *http.Server
	ln     *connListener
	states h2States // for draining and shutting down (drain.go)
	// arrivedAt is when the last connection was handed to srv (unix
	// nanos), for shutdownH2's settling.
	arrivedAt atomic.Int64
}

// h2Settle is how long a new HTTP/2 connection gets before its GOAWAY at a
// shutdown. A client sends its first request with its handshake's last
// flight; a GOAWAY sent before the server read it names stream 0, and the
// request is refused (to be sent again elsewhere, RFC 9113 §8.7: clients
// do, but a strict one counts it lost). Keep-alives are off meanwhile, so
// a connection whose streams end gets its GOAWAY then, naming them.
const h2Settle = 100 * time.Millisecond

// h2For returns the HTTP/2 server of HTTPS port port, started on first use.
func (s *Server) h2For(port int) *h2Front {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.h2[port]; h != nil {
		return h
	}
	h := &h2Front{s: s, port: port, ln: newConnListener()}
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	h.srv = &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: s.opts.HeaderTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
		ConnState:         h.connState,
		// No dynamic table for the answers' header fields: nginx's
		// encoder sets its size to 0, HAProxy's fills none. 1 byte holds
		// no field (0 would be Go's default, 4 KiB, which keeps the last
		// answers' fields in each connection: some 1.4 KiB of an idle
		// one's memory); the first answer says so with a table size
		// update. The requests' table, the clients' to fill, stays at 4
		// KiB: it saves their cookies' bytes on every request.
		HTTP2: &http.HTTP2Config{MaxEncoderHeaderTableSize: 1},
	}
	h.srv.SetKeepAlivesEnabled(!s.draining.Load())
	if s.h2 == nil {
		s.h2 = make(map[int]*h2Front)
	}
	s.h2[port] = h
	if s.shutting.Load() {
		h.ln.Close() // Shutdown or Close ran: Serve returns at once, as accept refuses the port
	}
	go h.srv.Serve(h.ln)
	return h
}

// connState is the HTTP/2 server's ConnState hook: idle connections are
// tracked for draining, and a new one counts towards the parker's trim
// (parker.countH2).
func (h *h2Front) connState(nc net.Conn, st http.ConnState) {
	if st == http.StateNew {
		h.s.parker.countH2()
	}
	h.states.connState(nc, st)
}

// serve hands a TLS connection that chose h2 to the HTTP/2 server.
func (h *h2Front) serve(tc *tls.Conn) {
	h.arrivedAt.Store(time.Now().UnixNano())
	select {
	case h.ln.ch <- tc:
	case <-h.ln.done:
		tc.Close()
	}
}

// h2Fronts is every HTTP/2 server, for shutting them down.
func (s *Server) h2Fronts() []*h2Front {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hs []*h2Front
	for _, h := range s.h2 {
		hs = append(hs, h)
	}
	return hs
}

// shutdownH2 sends GOAWAY on every HTTP/2 connection and waits for their
// streams, until ctx is done: then it closes them. The GOAWAYs wait for
// the TLS handshakes in progress (arrivals.go), whose connections are
// served too, and for the newest connection to settle (h2Settle);
// meanwhile a connection gets its GOAWAY as its streams end, as one does
// that reaches net/http's server just as its Shutdown sends them (it is
// not yet among the connections Shutdown tells).
func (s *Server) shutdownH2(ctx context.Context) {
	for _, h := range s.h2Fronts() {
		h.srv.SetKeepAlivesEnabled(false)
	}
	select {
	case <-s.arrivals():
	case <-ctx.Done():
	}
	var wg sync.WaitGroup
	for _, h := range s.h2Fronts() {
		wg.Go(func() {
			if wait := h2Settle - time.Since(time.Unix(0, h.arrivedAt.Load())); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
			// A connection that has not sent its preface by the end of
			// the grace (and h2Settle) is closed, as a plain one without
			// its first request is: net/http would send its GOAWAY only
			// after the preface, and wait 10 s for that.
			silent := time.AfterFunc(time.Until(s.graceEnd().Add(h2Settle)), func() { h.states.closeIn(http.StateNew) })
			if h.srv.Shutdown(ctx) != nil {
				h.srv.Close()
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
