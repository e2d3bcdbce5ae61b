package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTP/2 (ALPN h2 on the HTTPS port) is served by net/http's server, one
// per HTTPS port, fed the connections whose handshake chose h2; each
// stream is bridged to an instance over HTTP/1.1 (h2bridge.go). At a
// shutdown or an upgrade, its connections get GOAWAY and finish their
// streams: a TLS connection's state is this process's, it is not passed.

// h2Front is the HTTP/2 server of one HTTPS port.
type h2Front struct {
	s    *Server
	port int
	srv  *http.Server
	ln   *connListener
	idle h2Idle // for draining (drain.go)
}

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
		ConnState:         h.idle.connState,
	}
	h.srv.SetKeepAlivesEnabled(!s.draining.Load())
	if s.h2 == nil {
		s.h2 = make(map[int]*h2Front)
	}
	s.h2[port] = h
	go h.srv.Serve(h.ln)
	return h
}

// serve hands a TLS connection that chose h2 to the HTTP/2 server.
func (h *h2Front) serve(tc *tls.Conn) {
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
// streams, until ctx is done: then it closes them.
func (s *Server) shutdownH2(ctx context.Context) {
	var wg sync.WaitGroup
	for _, h := range s.h2Fronts() {
		wg.Go(func() {
			if h.srv.Shutdown(ctx) != nil {
				h.srv.Close()
			}
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
