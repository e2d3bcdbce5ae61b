package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"smoothserve/internal/nofile"
	"smoothserve/upstream"
)

// Options tune the client side of the proxy. A zero field takes the default
// named beside it.
type Options struct {
	HeaderTimeout   time.Duration  // a request head must arrive within this (10s)
	IdleTimeout     time.Duration  // keep-alive wait, and the longest a client may stall mid-request or mid-response (75s)
	MaxHeaderBytes  int            // a larger request head gets 431 (32 KiB)
	MaxHeaderFields int            // a request with more header fields gets 431 (100)
	BodyTimeout     time.Duration  // the longest a client may stall while sending a request body (60s)
	ShutdownGrace   time.Duration  // after Shutdown begins, an idle connection stays open this long for a request already on its way (1s)
	TrustedProxies  []netip.Prefix // clients whose X-Forwarded-* headers are kept and extended
	HTTPChallenge   ChallengeFunc  // answers ACME HTTP-01 challenges on the plain-HTTP ports (nil: none)
	Logger          *slog.Logger   // where failures are logged (slog.Default())

	parkAfter  time.Duration // tests: how long a connection idles before it is parked (park.go); <0: never
	parkedHook func(*conn)   // tests: called by leaveToParker once c is registered, before it looks at the flags
}

func (o *Options) fill() {
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 75 * time.Second
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 32 << 10
	}
	if o.MaxHeaderFields <= 0 {
		o.MaxHeaderFields = 100
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 60 * time.Second
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.parkAfter == 0 {
		o.parkAfter = defaultParkAfter
	}
}

// Server proxies the connections accepted on its listeners.
//
// Ownership: the routing table is published through an atomic pointer;
// conns (the set of open client connections) is guarded by mu and touched
// only when a connection opens or closes, never per request.
type Server struct {
	opts   Options
	routes atomic.Pointer[routes]

	shutting   atomic.Bool
	closed     atomic.Bool  // Close began: every connection is being closed
	shutdownAt atomic.Int64 // unix nanos when Shutdown began
	passFn     atomic.Pointer[PassFunc]
	passStats  passCounters
	line       passLine // the parked connections to pass (handover.go)

	drainMu     sync.Mutex   // serializes SetDraining
	draining    atomic.Bool  // SetDraining (drain.go)
	drainClosed atomic.Int64 // connections closed because of draining, since it began
	h2Streams   atomic.Int64 // HTTP/2 streams being answered (InFlight)

	parker    *parker       // the parked idle connections (park.go)
	parkAfter time.Duration // how long a connection idles before it is parked; 0: never
	shedTotal atomic.Int64  // idle client connections closed to free descriptors (shed.go)
	shedGen   atomic.Uint64 // how many times makeRoom freed descriptors; changed under shedMu
	shedMu    sync.Mutex    // serializes makeRoom, and guards shedLogAt
	shedLogAt time.Time     // makeRoom's last log line
	noRoom    nofile.Said   // when an accept last said it found no room

	statsMu sync.Mutex               // guards stats: taken when routes are built and when scraped
	stats   map[string]*serviceStats // each service's counters (stats.go), kept across routing tables
	base    []ServiceStats           // the counters of the process this one replaced (SetBase)

	mu        sync.Mutex
	listeners map[net.Listener]int // the port each serves
	conns     map[*conn]struct{}
	tunnels   int              // how many of conns are tunnels
	h2        map[int]*h2Front // the HTTP/2 server of each HTTPS port (h2.go)
	allClosed chan struct{}    // closed when shutting and conns holds none Shutdown waits for, nor will (done)
	wg        sync.WaitGroup
	// arriving counts what may still bring a connection (arrivals.go):
	// accept loops running, and TLS handshakes not over.
	arriving    int
	arrived     []chan struct{}         // each closed when arriving falls to 0
	handshaking map[*tls.Conn]time.Time // the TLS connections in their handshake, and its deadline
	cut         bool                    // Close, or a Shutdown out of time, cut the arrivals short
}

// New returns a Server routing by rs.
func New(opts Options, rs []Route) (*Server, error) {
	opts.fill()
	s := &Server{
		opts:        opts,
		listeners:   make(map[net.Listener]int),
		conns:       make(map[*conn]struct{}),
		allClosed:   make(chan struct{}),
		handshaking: make(map[*tls.Conn]time.Time),
	}
	s.parker = newParker(s)
	if opts.parkAfter > 0 && opts.parkAfter < opts.IdleTimeout {
		s.parkAfter = opts.parkAfter
	}
	if err := s.SetRoutes(rs); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckRoutes reports whether SetRoutes would take rs, changing nothing.
func CheckRoutes(rs []Route) error {
	_, err := buildRoutes(rs, nil)
	return err
}

// SetRoutes replaces the routing table; requests already routed are not
// affected.
func (s *Server) SetRoutes(rs []Route) error {
	t, err := buildRoutes(rs, s.statsFor)
	if err != nil {
		return err
	}
	s.routes.Store(t)
	return nil
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Serve accepts connections on ln, which listens on proxy port port, until
// Shutdown or Close.
func (s *Server) Serve(ln net.Listener, port int) error {
	return s.accept(ln, port, func(nc net.Conn) {
		if c := s.newConn(nc, port); c != nil {
			go c.serve()
		}
	})
}

// accept hands each connection accepted on ln to serve, until Shutdown or
// Close.
func (s *Server) accept(ln net.Listener, port int, serve func(net.Conn)) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = port
	s.wg.Add(1)
	s.arriving++
	s.mu.Unlock()
	defer s.wg.Done()
	defer s.arrivalOver(nil)

	var delay time.Duration
	for {
		gen := s.shedGen.Load()
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return ErrServerClosed
			}
			if nofile.Exhausted(err) && s.makeRoom("accepting on port "+strconv.Itoa(port), err, gen) {
				continue // idle connections closed (shed.go): room for this one
			}
			var ne net.Error
			if exhausted := nofile.Exhausted(err); exhausted || errors.As(err, &ne) && ne.Timeout() {
				// Out of descriptors, with no idle connection to close
				// (none idle long enough yet): wait rather than spin; the
				// queued connections stay in the backlog, and each try
				// asks for room again.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				if !exhausted {
					s.opts.Logger.Error("proxy: accept failed; retrying", "port", port, "err", err, "retry_in", delay)
				} else if s.noRoom.Due() {
					s.opts.Logger.Warn("proxy: out of file descriptors, with no idle connection to close yet: new connections wait in the listen queue (said once in 10s)",
						"port", port, "err", err)
				}
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("proxy: accept on port %d: %w", port, err)
		}
		delay = 0
		serve(nc)
	}
}

func (s *Server) newConn(nc net.Conn, port int) *conn {
	c := newConn(s, nc, port)
	s.mu.Lock()
	// Once Close, or a Shutdown that ran out of time, has run, a
	// connection that comes now (one whose TLS handshake was still going
	// on then) is closed, not served.
	if s.closed.Load() || s.cut || s.shutting.Load() && s.closedAll() {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c
}

func (s *Server) closedAll() bool {
	select {
	case <-s.allClosed:
		return true
	default:
		return false
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.state.Load() == stateTunnel {
		s.tunnels--
	}
	s.checkDoneLocked()
	s.mu.Unlock()
}

// enterTunnel lists c as a tunnel to the instance over uc: Shutdown does not
// wait for it, PassConnections interrupts it to pass it.
func (s *Server) enterTunnel(c *conn, uc *upstream.Conn) {
	c.tun.Store(uc)
	s.mu.Lock()
	c.state.Store(stateTunnel)
	s.tunnels++
	s.checkDoneLocked()
	s.mu.Unlock()
}

// checkDoneLocked closes allClosed once shutting and no connection is left
// that Shutdown waits for: any connection but a tunnel, or, when passing
// them, any at all; nor one still arriving: a connection an accept loop
// took as its listener closed, or one in its TLS handshake, is served too.
func (s *Server) checkDoneLocked() {
	left := len(s.conns) + s.arriving
	if s.passFn.Load() == nil {
		left -= s.tunnels
	}
	if left == 0 && s.shutting.Load() && !s.closedAll() {
		close(s.allClosed)
	}
}

// Shutdown stops accepting, lets every request in progress finish (its
// response carries Connection: close), closes idle connections after
// ShutdownGrace, and returns once every connection but the tunnels is
// closed, or ctx is done: then it closes what is left, tunnels too.
// Tunnels go on until their instance ends them (it is stopped after the
// proxy) or Close.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdown(ctx, nil)
}

// PassConnections is Shutdown that keeps the clients' connections open: each is
// passed to fn as soon as it is between two requests (an idle one at once,
// a busy one when its response is done, which then does not say
// Connection: close), a tunnel at once, and a response still streaming
// from where it stands (its next wait for the instance). A connection fn
// fails to take stays here and ends as in Shutdown; a tunnel, when it ends
// or when ctx is done.
func (s *Server) PassConnections(ctx context.Context, fn PassFunc) error {
	return s.shutdown(ctx, fn)
}

func (s *Server) shutdown(ctx context.Context, fn PassFunc) error {
	s.mu.Lock()
	if !s.shutting.Load() {
		if fn != nil {
			// Before the flag: a connection that sees shutting sees fn.
			s.passFn.Store(&fn)
		}
		s.shutdownAt.Store(time.Now().UnixNano())
		s.shutting.Store(true)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	s.graceArrivalsLocked()
	resume, pass := s.turnConnsLocked(fn)
	s.checkDoneLocked()
	s.mu.Unlock()
	for _, c := range resume {
		// TLS, or stopping: it waits out the grace here. (wake: one woken
		// and parked again as a stream between the look at its state and
		// the take goes on as one.)
		go c.wake()
	}
	s.enline(pass...)

	h2Done := make(chan struct{})
	go func() { s.shutdownH2(ctx); close(h2Done) }()
	select {
	case <-s.allClosed:
		s.wg.Wait()
		<-h2Done
		return ctx.Err()
	case <-ctx.Done():
		if fn == nil {
			s.closeAllBut(stateTunnel) // a stop leaves tunnels to their instances (and Close)
		} else {
			s.Close()
		}
		<-h2Done
		return ctx.Err()
	}
}

// turnConnsLocked turns every connection toward the shutdown that began
// (passing to fn if not nil): idle ones get the grace's deadline, and it
// returns the parked ones to take up again here (resume) and those to
// pass as they are (pass). Under s.mu.
func (s *Server) turnConnsLocked(fn PassFunc) (resume, pass []*conn) {
	for c := range s.conns {
		switch c.state.Load() {
		case stateIdle, stateFirst:
			// Not through c's deadline cache: its goroutine owns that,
			// and renews only an idle deadline it set itself.
			c.nc.SetReadDeadline(c.graceDeadline())
		case stateParked:
			// A plain one, handing over, is passed as it is
			// (passParked), taken from the parker only when its turn
			// comes: one whose client sends meanwhile is woken, and its
			// own goroutine passes it at once, not after thousands of
			// idle ones. (Parked, keepHere is false: parkable.)
			if fn != nil && !c.secure {
				pass = append(pass, c)
				continue
			}
			// Stopping, or TLS: taken up again to wait out the grace
			// as an idle one; one not taken here is on its way back
			// already, and sees the flag.
			if s.parker.take(c) {
				resume = append(resume, c)
			}
		case stateActive:
			// A plain parked stream (streampark.go) is passed as it is,
			// as an idle one; a stop leaves it to its instance, or to
			// the end of the grace (closeAllBut), and a TLS one, not
			// passed, goes on here as one not parked.
			if fn != nil && !c.secure && s.parker.has(c) {
				pass = append(pass, c)
			}
		case stateTunnel:
			switch {
			case fn == nil || c.secure:
				// A TLS tunnel is not passed: it goes on, untouched
				// (an interrupted write would break its tls.Conn).
			case s.parker.has(c):
				// Parked (quiet): passed as it is, as an idle one.
				pass = append(pass, c)
			default:
				c.interrupt() // one kept here after a failed pass just goes on
			}
		}
	}
	return resume, pass
}

// closeAllBut closes every connection but those in state keep, and those
// in their TLS handshake, at once.
func (s *Server) closeAllBut(keep int32) {
	s.mu.Lock()
	s.cutArrivalsLocked()
	var parked []*conn
	for c := range s.conns {
		if st := c.state.Load(); (st == stateParked || st == stateActive) && s.parker.take(c) {
			parked = append(parked, c) // idle, or a stream
		} else if st != keep {
			c.hardClose()
		}
	}
	s.mu.Unlock()
	for _, c := range parked {
		c.closeParked()
	}
}

// Close closes every listener and connection at once.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed.Store(true)
	if !s.shutting.Load() {
		s.shutdownAt.Store(time.Now().UnixNano())
		s.shutting.Store(true)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	s.cutArrivalsLocked()
	var parked []*conn
	for c := range s.conns {
		if st := c.state.Load(); (st == stateParked || st == stateTunnel || st == stateActive) && s.parker.take(c) {
			parked = append(parked, c) // closed and forgotten below: no goroutine of its own does it
			continue
		}
		c.hardClose()
		if uc := c.tun.Load(); uc != nil {
			uc.Socket.Close() // the instance's end too: it may never close its own
		}
	}
	if s.passFn.Load() != nil {
		s.passStats.Cut.Add(int64(len(s.conns)))
	}
	for _, h := range s.h2 {
		cur := h.cur.Load()
		cur.ln.Close()
		cur.srv.Close()
		for sv := range h.retired {
			sv.srv.Close()
		}
	}
	s.mu.Unlock()
	for _, c := range parked {
		c.closeParked()
	}
}

// hardClose closes c at once from outside its goroutine, which then finds
// it closed and ends it: a TLS connection's TCP connection, without the
// close_notify a tls.Conn's Close would write first, which can wait up to
// 5 s for room in the socket of a client that stopped reading (under
// s.mu, in Close and closeAllBut).
func (c *conn) hardClose() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		tc.NetConn().Close()
		return
	}
	c.nc.Close()
}

// graceDeadline is when an idle connection is closed during shutdown, or
// (handing over) stops waiting to be passed: at once; a TLS connection,
// which is not passed, has the grace of a shutdown then too.
func (c *conn) graceDeadline() time.Time {
	at := time.Unix(0, c.srv.shutdownAt.Load())
	if c.srv.passFn.Load() != nil && !c.secure {
		return at
	}
	return c.srv.graceEnd()
}
