package proxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"smoothserve/upstream"
)

// This file is passing connections to another process at an upgrade
// (PassConnections) and taking them from one (ServeHandover): a client's
// connection between two requests, a tunnel (tunnel.go), or a response
// in progress (stream.go).

// A Handover is a client's connection on its way to, or from, another
// process, with everything needed to go on with it there.
type Handover struct {
	Port     int      // the proxy port it was accepted on
	Client   net.Conn // the client's connection
	Buffered []byte   // read from the client and not yet used
	// Waiting: a client's connection between two requests whose client
	// has sent the next one (or some of it), and waits for its answer.
	// Not set by the receiving process.
	Waiting bool

	// A tunnel or a response in progress also hands over the connection to
	// the instance, and the bytes read from it and not yet used.
	Instance         upstream.Socket
	InstanceAddr     string
	InstanceBuffered []byte
	// Backend is the instance as the receiving process knows it (by
	// InstanceAddr), to count a response in progress against; nil if it
	// knows none. Not set by the passing process.
	Backend *upstream.Backend
	// Stream is where a response in progress stands (stream.go); nil for
	// a tunnel.
	Stream []byte
}

// Tunnel reports whether h is a tunnel (a WebSocket): an instance
// connection and no response in progress.
func (h *Handover) Tunnel() bool { return h.Instance != nil && h.Stream == nil }

// A PassFunc passes a connection to another process. nil error: the
// connection (both of them, for a tunnel or a stream) is the other
// process's now, and this one closes only its own descriptors.
type PassFunc func(h *Handover) error

// PassStats counts what PassConnections passed, and what it could not.
type PassStats struct {
	Clients, Tunnels, Streams int64 // passed
	Failed                    int64 // kept here after passing failed
	Cut                       int64 // connections (tunnels, streams, requests) still here when PassConnections' context ended
}

// passCounters are PassStats as the connections count them.
type passCounters struct {
	Clients, Tunnels, Streams, Failed, Cut atomic.Int64
}

// PassStats is what PassConnections has passed so far.
func (s *Server) PassStats() PassStats {
	p := &s.passStats
	return PassStats{Clients: p.Clients.Load(), Tunnels: p.Tunnels.Load(), Streams: p.Streams.Load(), Failed: p.Failed.Load(), Cut: p.Cut.Load()}
}

// ServeHandover serves a connection passed by another process's
// PassConnections as if it had been accepted on h.Port here. The caller
// closes h's connections if it fails.
func (s *Server) ServeHandover(h *Handover) error {
	if h.Instance == nil && h.Stream != nil {
		return errors.New("proxy: a response in progress passed without its instance connection")
	}
	var rel relay
	var rid []byte
	if h.Stream != nil {
		var err error
		if rid, err = rel.decode(h.Stream); err != nil {
			return err
		}
	}
	if s.shutting.Load() {
		return ErrServerClosed
	}
	c := s.newConn(h.Client, h.Port)
	if c == nil {
		return ErrServerClosed
	}
	if len(h.Buffered) > 0 {
		c.pre = &prefixed{pre: h.Buffered, r: h.Client}
	}
	if h.Instance == nil {
		c.arrive()
		return nil
	}
	uc, err := upstream.Adopt(h.Instance, h.InstanceBuffered)
	if err != nil {
		c.nc.Close()
		c.srv.forget(c)
		return fmt.Errorf("proxy: taking the connection to %s: %w", h.InstanceAddr, err)
	}
	if h.Stream == nil {
		go c.serveTunnel(uc, h.InstanceAddr)
		return nil
	}
	rel.b, rel.addr = h.Backend, h.InstanceAddr
	if rel.b != nil {
		rel.b.Claim()
	}
	go c.serveStream(uc, &rel, rid)
	return nil
}

// ServeConn serves a client's connection passed between two requests, with
// the bytes already read from it, as ServeHandover does.
func (s *Server) ServeConn(nc net.Conn, port int, buffered []byte) error {
	return s.ServeHandover(&Handover{Port: port, Client: nc, Buffered: buffered})
}

// arrive serves a client's connection passed between two requests. One
// with nothing of its next request read or sent waits for it parked, as it would
// have after idling here: no goroutine or buffers of its own until its
// client sends, so an upgrade takes over thousands of idle connections at
// the cost of their descriptors. IdleTimeout counts from its arrival.
func (c *conn) arrive() {
	// One whose client has sent meanwhile is served at once: parked, it
	// would wait for the parker to see it.
	if c.parkable() && !c.clientSent() {
		c.idleSince = time.Now()
		if c.leaveToParker(false) == parked {
			return
		}
	}
	// Bytes of its next request read already, or it could not be parked
	// (then woke: it waits as one taken up again).
	go c.serve()
}

// passLine is the parked connections waiting their turn to be passed at a
// hand-over, in the order they came: those parked when it began, and the
// idle ones that park when it reaches them (serveRequests). Waiting
// parked, a connection whose client sends is woken, and its goroutine
// passes it at once (its client waits: connpass's SendWaiting), not after
// the thousands ahead of it in the line.
//
// Ownership: mu guards queue and running; one goroutine at a time
// (passParked) passes what is queued.
type passLine struct {
	mu      sync.Mutex
	queue   []*conn
	running bool
}

// enline queues parked connections to be passed, and starts passing them
// if nothing is.
func (s *Server) enline(cs ...*conn) {
	l := &s.line
	l.mu.Lock()
	l.queue = append(l.queue, cs...)
	start := !l.running && len(l.queue) > 0
	l.running = l.running || start
	l.mu.Unlock()
	if start {
		go s.passParked()
	}
}

// next is the line's next connection, or nil when it is empty (then
// nothing is passing it any longer).
func (l *passLine) next() *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		l.queue, l.running = nil, false
		return nil
	}
	c := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	return c
}

// passParked passes the line's connections as they are, one after another,
// without taking them up again: a parked connection holds nothing to pass
// but its socket (a tunnel's or a stream's, the instance's too, and a
// stream where its relay stands). Each is taken from the parker when its
// turn comes; one no longer there was woken meanwhile (its own goroutine
// passes it), or closed by the sweep or Close. One whose passing fails is
// taken up and stays here, as any connection whose passing failed. Once
// Close has begun (PassConnections' time is up), the rest are left to it:
// it closes what is parked, and counts it cut.
func (s *Server) passParked() {
	for c := s.line.next(); c != nil; c = s.line.next() {
		if s.closed.Load() {
			continue // emptied: Close has the parked ones
		}
		if !s.parker.take(c) {
			continue
		}
		h, passed := &Handover{}, &s.passStats.Clients
		switch {
		case c.tn != nil:
			h, passed = c.tn.handover(), &s.passStats.Tunnels // quiet: nothing buffered either way
		case c.strm != nil:
			h, passed = c.relayHandover(), &s.passStats.Streams // quiet, where its relay stopped
		}
		if c.pass(h, passed) {
			c.closeParked()
			continue
		}
		if c.strm != nil {
			c.keepBy = time.Time{} // as passStream: the grace for the next request starts when the response is done
		}
		go c.wake()
	}
}

// pass hands h to the PassFunc, and counts it. On failure the connection
// stays here to its end, and its next response says Connection: close.
func (c *conn) pass(h *Handover, passed *atomic.Int64) bool {
	fn := *c.srv.passFn.Load()
	h.Port, h.Client, h.Buffered = c.port, c.nc, c.unread()
	// A client's connection between two requests: its client may have sent
	// the next (since the line took it from the parker, too).
	h.Waiting = h.Instance == nil && (len(h.Buffered) > 0 || c.clientSent())
	if err := fn(h); err != nil {
		c.keepHere = true
		// The response before said keep-alive: the client may be sending
		// its next request now. It has the grace from now to come.
		c.keepBy = time.Now().Add(c.srv.opts.ShutdownGrace)
		c.srv.passStats.Failed.Add(1)
		what := "client connection"
		switch {
		case h.Tunnel():
			what = "tunnel"
		case h.Instance != nil:
			what = "response in progress"
		}
		c.srv.opts.Logger.Warn("proxy: handing a "+what+" over failed; it goes on here", "port", c.port, "err", err)
		return false
	}
	passed.Add(1)
	return true
}

// parkInLine parks c, idle at a hand-over, in the line of connections to
// pass (passLine), and reports whether it did; if so, c is the parker's.
// Passed at once instead, thousands of idle connections would all wait
// for their turn at the sender, and a request sent on one of them
// meanwhile would wait for all of them; parked, its client's request
// wakes it, and it goes ahead.
func (c *conn) parkInLine() bool {
	c.flushLog()
	c.release()
	if ok, _ := c.parkNow(true); !ok {
		c.start()
		return false
	}
	// Close, which takes what is parked, may have begun: then it closed
	// c's socket, or takes c from the parker, and the line passes it not.
	c.srv.enline(c)
	return true
}

// passOn passes the connection, between two requests, with what was read
// of the next one, and reports whether this goroutine is done with it
// (passed, or the client is gone); if not, it stays here.
func (c *conn) passOn() bool {
	// Responses to pipelined requests may wait in bw for the next one.
	if err := c.Flush(); err != nil {
		return true
	}
	return c.pass(&Handover{}, &c.srv.passStats.Clients)
}

// unread is what was read from the client and not yet used: the start of
// its next request, or, in a tunnel, bytes for the instance.
func (c *conn) unread() []byte {
	var buffered []byte
	if c.br != nil { // nil: parked, nothing read
		buffered, _ = c.br.Peek(c.br.Buffered())
	}
	if c.pre != nil && len(c.pre.pre) > 0 {
		// Passed here with more than the reader took in so far.
		buffered = append(buffered[:len(buffered):len(buffered)], c.pre.pre...)
	}
	return buffered
}
