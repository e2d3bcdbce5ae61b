package proxy

import (
	"bufio"
	"io"
	"sync/atomic"
	"syscall"
	"time"

	"smoothserve/upstream"
)

// A tunnel (a WebSocket, after a 101) joins the client's connection to the
// instance's until either side ends it. It is not a request in flight: an
// instance's drain does not wait for it, and Shutdown does not either
// (the instance, told to stop, closes it as it sees fit, and its exit
// closes what is left). At an upgrade it is passed to the new process,
// both connections, with the bytes either side sent that the other has not
// received: each direction copies through its reader's buffer, and what it
// has read and not yet written stays there.
//
// A quiet tunnel holds no buffer: each direction, its reader empty, waits
// for its socket to become readable with the reader given back to its pool
// (one recv(MSG_PEEK) more per read: a tunnel reads little at a time, or
// 8–16 KiB at a time), and the client's 16 KiB writer, which a tunnel does
// not use, is swapped for a small one as it begins.
//
// A tunnel quiet both ways for parkAfter (the instance's side waited half
// of it at least, and the client's too) is parked (park.go): its two
// goroutines end, and the parker watches both sockets (the instance's
// alone once the client ended its side); bytes on either take it up again
// on a new goroutine. What stays is the conn, its tunnelState and the two
// connections. The instance's side learns of the quiet from its read
// deadline (parkAfter, renewed once half of it has passed), the client's
// from when its wait began (tunnelState.upWait): the instance's side
// decides, and stops the client's. Its access log line is written when it
// ends, wherever that is: from the request kept in its tunnelState.

// tunnelWriterSize is the client writer's size during a tunnel: nothing is
// written through it, but it is flushed and counted as any other.
const tunnelWriterSize = 16

// tunnelState is a tunnel's, from its 101 to its end. Its fields belong to
// whoever owns the conn (its instance side's goroutine, or the parker and
// whoever takes it from there), but upWait, which the client side's
// goroutine writes.
type tunnelState struct {
	uc   *upstream.Conn
	addr string          // the instance's
	req  request         // the 101's, for the log line (its slices point into c.head, kept)
	raw  syscall.RawConn // uc's socket, for the parker; made when it first parks
	up   bool            // the client has not ended its side
	by   time.Time       // the instance side's read deadline (parkAfter); zero: none set
	// upWait is when the client side began waiting for its client
	// (UnixNano), 0 while it is not waiting.
	upWait atomic.Int64
}

// handover is what passing the tunnel hands over of the instance's side:
// its connection, with what was read of it and not yet relayed (nothing
// when parked: its reader is in the pool then).
func (t *tunnelState) handover() *Handover {
	h := &Handover{Instance: t.uc.Socket, InstanceAddr: t.addr}
	if t.uc.R != nil {
		h.InstanceBuffered = t.uc.Unread()
	}
	return h
}

// joinTunnel joins the client to the instance connection a 101 came on
// (c.tunnelTo) and reports whether the tunnel was parked: then it is the
// parker's, and the caller must not touch c again; if not, it has ended
// (or was passed), and the caller logs req.
func (c *conn) joinTunnel(req *request) bool {
	uc := c.tunnelTo
	c.tunnelTo = nil
	t := &tunnelState{uc: uc, req: *req, up: true}
	if c.rec.b != nil {
		t.addr = c.rec.b.Addr
	}
	c.releaseScratchButHead()
	if c.tunnel(t) {
		return true
	}
	uc.Close()
	return false
}

// serveTunnel serves a tunnel passed by another process.
func (c *conn) serveTunnel(uc *upstream.Conn, addr string) {
	c.startIO() // no request: no scratch slices
	if c.tunnel(&tunnelState{uc: uc, addr: addr, up: true}) {
		return
	}
	uc.Close()
	c.close()
}

// tunnel relays between the client and the instance over t.uc until
// either side ends, or the tunnel is passed to another process, or parked
// (reported: the parker's then).
func (c *conn) tunnel(t *tunnelState) bool {
	c.nc.SetDeadline(time.Time{}) // the connection ends with the tunnel
	c.tn = t
	c.srv.enterTunnel(c, t.uc)
	c.shrinkWriter()
	return c.relayTunnel()
}

// resumeTunnel takes a parked tunnel up again, on a goroutine of its own.
func (c *conn) resumeTunnel() {
	t := c.tn
	c.takeReader()
	t.uc.Wake()
	c.resetTunnelDeadlines() // what stopped it before it parked
	if c.relayOrPark() {
		return
	}
	t.uc.Close()
	c.endTunnel()
	c.close()
}

// relayOrPark is relayTunnel, with a panic logged and the tunnel ended
// (not parked), as serveOrPark does for a connection's requests.
func (c *conn) relayOrPark() (parked bool) {
	defer c.recoverPanic()
	return c.relayTunnel()
}

// relayTunnel is tunnel's loop: this goroutine copies from the instance to
// the client, another from the client to the instance, until the tunnel
// ends (false), is passed (false) or parked (true).
func (c *conn) relayTunnel() bool {
	t := c.tn
	client, instance := c.tunnelEnd(), instanceEnd{c: c, t: t}
	up := make(chan error, 1)
	upRunning := false
	for {
		if c.passing() {
			c.interrupt() // PassConnections began before the tunnel was listed, or while it was parked
		}
		if t.up && !upRunning {
			upRunning = true
			go func() { up <- pumpUp(client, t) }()
		}
		err := pump(instance, c.sink.w) // rawio's Conn, or TLS's (rawio's below)
		if !isTimeout(err) {
			// The instance ended the tunnel (or the client is gone).
			c.nc.Close()
			t.uc.Socket.Close()
			if upRunning {
				<-up
			}
			return false
		}
		// Its own deadline (quiet), or an interruption (PassConnections).
		quiet := !t.by.IsZero() && !time.Now().Before(t.by)
		t.by = time.Time{} // timed out: waitReadable sets it again
		if upRunning {
			select {
			case uerr := <-up: // the client ended its side (or was interrupted)
				upRunning = false
				t.up = t.up && isTimeout(uerr)
			default:
			}
		}
		passing := c.passing()
		if quiet && !passing && upRunning && !c.clientQuiet() {
			// Only the instance's side was quiet: on with both. (One
			// interrupted stops both, below, and waits for the other
			// direction: its timeout may be on its way.)
			c.resetTunnelDeadlines()
			continue
		}
		// Interrupted, to be passed, or quiet both ways: the other
		// direction stops too, where it stands (a write to the instance
		// as well: nothing waits on it while this side waits for it).
		if upRunning {
			if passing {
				c.interrupt()
			} else {
				c.nc.SetReadDeadline(time.Now())
				t.uc.Socket.SetWriteDeadline(time.Now())
			}
			if uerr := <-up; !isTimeout(uerr) {
				t.up = false
			}
			upRunning = false
		}
		switch {
		case passing:
			if c.pass(t.handover(), &c.srv.passStats.Tunnels) {
				return false
			}
		case c.tunnelQuiet():
			if c.parkTunnel() {
				return true
			}
		}
		c.resetTunnelDeadlines()
	}
}

// resetTunnelDeadlines clears what an interruption set on both connections.
func (c *conn) resetTunnelDeadlines() {
	c.nc.SetDeadline(time.Time{})
	c.tn.uc.Socket.SetDeadline(time.Time{})
	c.tn.by = time.Time{}
	if c.passing() {
		c.interrupt() // PassConnections began as they were cleared
	}
}

// clientQuiet reports whether the client's side has waited for its client
// for half of parkAfter at least.
func (c *conn) clientQuiet() bool {
	since := c.tn.upWait.Load()
	return c.srv.parkAfter > 0 && since != 0 && time.Since(time.Unix(0, since)) >= c.srv.parkAfter/2
}

// tunnelQuiet reports whether the tunnel, both directions stopped, may be
// parked: parking is on, and nothing either side sent waits in a buffer.
func (c *conn) tunnelQuiet() bool {
	return c.srv.parkAfter > 0 && !c.keepHere && (c.br == nil || c.br.Buffered() == 0) &&
		(c.pre == nil || len(c.pre.pre) == 0) && len(c.tn.uc.Unread()) == 0
}

// parkTunnel leaves the tunnel, both directions stopped and quiet, to the
// parker, and reports whether it did: then it is the parker's (or its
// taker's), and this goroutine must not touch it again.
func (c *conn) parkTunnel() bool {
	t := c.tn
	if t.raw == nil {
		raw, err := t.uc.Socket.SyscallConn()
		if err != nil {
			return false
		}
		t.raw = raw
	}
	c.flushLog()
	c.putReader()
	t.uc.Rest()
	p := c.srv.parker
	kept := c.keepHere // read while it is this goroutine's: once parked, its taker's
	if ok, seq := p.parkTunnel(c); ok {
		// Shutdown sets passFn and the flag, and Close its flag, before
		// they look for parked tunnels: one of the two sees the other,
		// and the parker's lock decides.
		if !c.passingKept(kept) && !c.srv.closed.Load() || !p.takeParking(c, seq) {
			return true
		}
	}
	c.takeReader()
	t.uc.Wake()
	return false
}

// endTunnel counts and logs the tunnel's request once it has ended, when
// it was parked on the way: one that never was is logged by its request's
// goroutine (serveRequests).
func (c *conn) endTunnel() {
	if c.tn.req.method != nil {
		c.endRequest(&c.tn.req)
		c.flushLog()
	}
}

// interrupt stops both directions of a tunnel, where they stand, for
// passing it: reads and writes on both connections time out at once.
// Called by Shutdown's goroutine as well as the tunnel's.
func (c *conn) interrupt() {
	now := time.Now()
	c.nc.SetDeadline(now)
	c.tun.Load().Socket.SetDeadline(now)
}

// shrinkWriter swaps the client's writer, flushed (the 101 was), for a
// small one for the tunnel; close does not pool it.
func (c *conn) shrinkWriter() {
	if c.bw.Buffered() > 0 || c.bw.Size() == tunnelWriterSize {
		return
	}
	c.putWriter()
	c.bw = bufio.NewWriterSize(&c.sink, tunnelWriterSize)
}

// A tunnelSource is what one direction of a tunnel reads from.
type tunnelSource interface {
	// reader is the source's reader; it may change across waitReadable.
	reader() *bufio.Reader
	// waitReadable waits, with the reader empty, until there are bytes to
	// read (or an end, or the read deadline), without holding a buffer
	// while it waits.
	waitReadable() error
}

// clientEnd is the client's side of a tunnel.
type clientEnd struct{ c *conn }

func (c *conn) tunnelEnd() *clientEnd { return &clientEnd{c: c} }

func (e *clientEnd) reader() *bufio.Reader { return e.c.br }

// waitReadable is readFirst: a plain connection waits without its reader,
// as one waiting for its next request does. The wait's start is known to
// the other side, which decides on parking.
func (e *clientEnd) waitReadable() error {
	t := e.c.tn
	t.upWait.Store(time.Now().UnixNano())
	err := e.c.readFirst()
	t.upWait.Store(0)
	return err
}

// instanceEnd is the instance's side of a tunnel.
type instanceEnd struct {
	c *conn
	t *tunnelState
}

func (e instanceEnd) reader() *bufio.Reader { return e.t.uc.R }

// waitReadable waits for the instance within parkAfter: renewed once half
// of it has passed, so a busy tunnel does not pay for a timer a message,
// and a timeout means half of it passed without a byte.
func (e instanceEnd) waitReadable() error {
	if d := e.c.srv.parkAfter; d > 0 {
		now := time.Now()
		if e.t.by.Sub(now) < d/2 {
			e.t.by = now.Add(d)
			e.t.uc.Socket.SetReadDeadline(e.t.by)
			if e.c.passing() {
				e.c.interrupt() // PassConnections began as it was set
			}
		}
	}
	return e.t.uc.WaitReadable()
}

// pumpUp copies from the client to the instance until the client ends its
// side, which is then ended towards the instance, or an interruption.
func pumpUp(client tunnelSource, t *tunnelState) error {
	err := pump(client, t.uc) // its Write: rawio's
	if !isTimeout(err) {
		t.uc.CloseWrite()
	}
	return err
}

// pump copies from src to dst until either fails or a deadline interrupts
// it; what was read from src and not written to dst stays in src's buffer.
func pump(src tunnelSource, dst io.Writer) error {
	for {
		if src.reader().Buffered() == 0 {
			if err := src.waitReadable(); err != nil {
				return err
			}
			if _, err := src.reader().Peek(1); err != nil {
				return err
			}
		}
		r := src.reader()
		b, _ := r.Peek(r.Buffered())
		n, err := dst.Write(b)
		r.Discard(n)
		if err != nil {
			return err
		}
	}
}
