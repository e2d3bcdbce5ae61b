package proxy

import (
	"errors"
	"net"
	"time"

	"smoothserve/internal/sockpeek"
)

// A connection between two requests waits for its client's next one
// under one deadline: its IdleTimeout, parkAfter when it may be parked, a
// drain's last call, or a shutdown's grace, whichever its state and the
// server's call for. Its writer, flushed, goes back to the pool while it
// waits (flushToWait), and so does its reader when a plain connection has
// nothing read ahead (readFirst).

// errParked ends a goroutine's wait for the next request: the parker has
// the connection now.
var errParked = errors.New("proxy: parked")

// waitForRequest waits for the first byte of the next request. Its writer,
// flushed, is back in the pool while it waits (clientReader): thousands of
// busy connections, each waiting for its client's next request most of
// the time, hold a writer only while they answer. It has one again when
// this returns, unless parked.
func (c *conn) waitForRequest() error {
	if c.br.Buffered() > 0 { // pipelined
		c.state.Store(stateActive)
		return nil
	}
	c.lendWriter = true
	err := c.awaitRequest()
	if err == errParked {
		return err // the parker's now (release cleared lendWriter)
	}
	c.lendWriter = false
	if c.bw == nil {
		c.takeWriter()
	}
	return err
}

// awaitRequest is waitForRequest with nothing pipelined.
func (c *conn) awaitRequest() error {
	// The deadline is set before the state says idle, and the shutdown flag
	// is read after: Shutdown does the opposite, so one of the two sees the
	// other and the grace deadline wins.
	now := time.Now()
	resumed := c.woke // idle when it was parked, or when parking it failed
	c.waitDeadline(now)
	first := c.rec.start.IsZero()
	if first {
		c.state.Store(stateFirst)
	} else {
		c.state.Store(stateIdle)
	}
	if !first && c.srv.drainingOnly() && !c.clientSent() && c.lastCallOver(now) {
		return errDraining
	}
	if c.srv.shutting.Load() {
		c.graceWait(now, first || resumed)
	}
	err := c.readFirst()
	for err != nil && c.unwarned && isTimeout(err) && !errors.Is(err, errClientGone) && c.graceAfterRead(time.Now()) {
		err = c.readFirst()
	}
	c.unwarned, c.unwarnedBy = false, time.Time{}
	// A flush of the last response that timed out (flushToWait) is a
	// client that stopped reading, not an idle one: it closes.
	if err != nil && c.readKind == readPark && !c.srv.shutting.Load() && isTimeout(err) && !errors.Is(err, errClientGone) {
		// Idle for parkAfter: no goroutine waits for it any longer.
		if !c.srv.draining.Load() && c.park() == parked {
			return errParked
		}
		// Not parked (draining, shutting down, or the descriptor could
		// not be watched): it waits on here, as woken, the rest of its
		// IdleTimeout (or its grace), and is not parked again; draining,
		// one that has had a request closes, one that has not waits for
		// its first. Draining, it has had its last call (SetDraining's,
		// or idle longer).
		c.woke = true
		c.lastCalled = c.srv.draining.Load()
		return c.awaitRequest()
	}
	return c.endWait(err)
}

// waitDeadline sets the deadline of the wait for the next request that
// begins at now: the rest of its IdleTimeout if its wait goes on (woke:
// taken up again after parking, or not parked at parkAfter), parkAfter if
// it may be parked, its IdleTimeout if not.
func (c *conn) waitDeadline(now time.Time) {
	switch {
	case c.woke: // taken up again after parking: the wait goes on
		c.woke = false
		c.setReadDeadline(c.idleSince.Add(c.srv.opts.IdleTimeout))
	case c.parkable():
		c.idleSince = now
		c.parkDeadline(now)
	default:
		c.idleReadDeadline(now)
	}
}

// lastCallOver is the wait's turn while draining, for a connection that
// has had a request and whose client sent nothing yet. Its first wait
// since draining began gets its last call (lastCall from now, unless its
// own deadline is nearer) and reports false; a later one reports true:
// the connection closes, what it owes its client sent first.
func (c *conn) lastCallOver(now time.Time) bool {
	if !c.lastCalled {
		// Its last answer said keep-alive (one that said close ended
		// it): begun before draining did, its client may be sending
		// its next request. Its last call, as SetDraining gives one
		// idle then.
		c.lastCalled = true
		if by := now.Add(lastCall); c.readBy.IsZero() || by.Before(c.readBy) {
			c.setReadDeadline(by) // a timeout of this kind closes it (endWait)
		}
		return false
	}
	// The end of the last response (a stream's last chunk) may wait in
	// bw: it goes out before the connection closes. A request the client
	// sent already is served (its answer closes the connection): closing
	// now would reset it.
	c.flushLog()
	c.Flush()
	c.srv.drainClosed.Add(1)
	return true
}

// graceWait sets the deadline of a wait during a shutdown, from now. A
// connection kept here waits out its grace (from when it was kept, or
// from now if that was mid-response); one to be handed over, none (it is
// passed); one that was waiting when the shutdown began (waiting, as
// Shutdown found it), the shutdown's grace. Any other has just answered a
// request whose head said keep-alive, so went out before the shutdown
// began (every head after says Connection: close, but a passed
// connection's): its client was not told, and may be sending its next
// request as it reads the answer's end. It gets ShutdownGrace from when
// its client has read that answer (graceAfterRead), as one kept here
// mid-response gets it from then: a request then is answered, with
// Connection: close; closing it at once would lose that request.
func (c *conn) graceWait(now time.Time, waiting bool) {
	switch {
	case c.keepHere:
		if c.keepBy.IsZero() { // kept here mid-response: the grace runs from now
			c.keepBy = now.Add(c.srv.opts.ShutdownGrace)
		}
		c.setReadDeadline(c.keepBy)
	case waiting || c.passing():
		c.setReadDeadline(c.graceDeadline())
	default:
		c.unwarned = true
		c.graceAfterRead(now)
	}
}

// readPoll is how often an unwarned connection's wait looks at whether its
// client has read the last answer.
const readPoll = 50 * time.Millisecond

// graceAfterRead sets an unwarned connection's deadline, at now: a look
// readPoll from now while its client has not read all of the last answer
// (what the socket sent is not all acknowledged: a slow reader of a big
// answer takes seconds more than its writing did), and ShutdownGrace once
// it has (at least the shutdown's own grace). A client that has read
// nothing for ShutdownGrace is not reading (it stopped, or is gone): it
// has its grace no longer. Reports false when its grace is over.
func (c *conn) graceAfterRead(now time.Time) bool {
	if !c.unwarned {
		return false
	}
	q := -1
	if raw := c.socket(); raw != nil {
		q = sockpeek.Unsent(raw)
	}
	switch {
	case q <= 0: // all read (or the socket cannot say): its grace, the last wait
		c.unwarned = false
		by := now.Add(c.srv.opts.ShutdownGrace)
		if g := c.graceDeadline(); g.After(by) {
			by = g
		}
		c.setReadDeadline(by)
		return true
	case c.unwarnedBy.IsZero() || q < c.unwarnedQ: // the first look, or it read some
		c.unwarnedQ, c.unwarnedBy = q, now.Add(c.srv.opts.ShutdownGrace)
	case now.After(c.unwarnedBy):
		return false
	}
	c.setReadDeadline(now.Add(readPoll))
	return true
}

// endWait ends the wait for the next request, which readFirst ended with
// err, and returns what ends it: nil when the request came.
func (c *conn) endWait(err error) error {
	if err != nil && isTimeout(err) && c.srv.drainingOnly() && c.clientSent() {
		// SetDraining ended the wait as the client's request came: it
		// is served.
		c.setReadDeadline(time.Now().Add(c.srv.opts.HeaderTimeout))
		_, err = c.br.Peek(1)
	}
	for err != nil && isTimeout(err) && !errors.Is(err, errClientGone) && !c.srv.draining.Load() && !c.srv.shutting.Load() && time.Now().Before(c.readBy) {
		// Woken before its own deadline by one SetDraining wrote on the
		// socket (a last call) that outlived an undrain: the wait goes
		// on to its own.
		c.nc.SetReadDeadline(c.readBy)
		err = c.readFirst()
	}
	c.state.Store(stateActive)
	c.lastCalled = false
	if err == nil && (c.srv.shutting.Load() || c.srv.draining.Load()) {
		// Shutdown (or SetDraining) may have set a deadline (past, when
		// handing over) straight on the socket as the request came: the
		// next read (of a body) must set its own.
		c.readBy, c.readKind = time.Time{}, readOther
	}
	if err != nil && c.srv.drainingOnly() && isTimeout(err) {
		c.srv.drainClosed.Add(1) // SetDraining ended the wait
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// clientReader is what br reads from: the connection (after the bytes a
// passing process read, if any), once whatever waits in bw is flushed. A
// read from the client is where the proxy waits for it, so nothing the
// client should have (a response, while the next pipelined request is
// incomplete) waits with it.
type clientReader struct{ c *conn }

func (r *clientReader) Read(p []byte) (int, error) {
	c := r.c
	if err := c.flushToWait(); err != nil {
		return 0, err
	}
	if c.pre != nil {
		if len(c.pre.pre) > 0 || c.rio == nil {
			return c.pre.Read(p)
		}
		c.pre = nil // read: from here on the socket, as any connection
	}
	if c.rio != nil {
		return c.rio.Read(p)
	}
	return c.nc.Read(p)
}

// flushToWait sends the client what waits for it before the proxy waits
// for the client: the log lines, then bw, which goes back to the pool if
// waitForRequest lends it.
func (c *conn) flushToWait() error {
	c.flushLog()
	if err := c.Flush(); err != nil {
		return err
	}
	if c.lendWriter && c.bw != nil && c.bw.Size() == clientWriteBuf {
		c.putWriter() // flushed: waitForRequest takes one again
	}
	return nil
}

// readFirst reads the first bytes the client sends next into br, waiting
// for them: of its next request, or a tunnel's (clientEnd). A plain
// connection with nothing read waits without a reader (rawio's
// WaitReadable), which it takes back once bytes came (or the end, or the
// deadline): a connection waiting for its client holds no buffer, as one
// waiting for its instance holds none (sendRequest).
func (c *conn) readFirst() error {
	if c.pre != nil && len(c.pre.pre) == 0 {
		c.pre = nil // the bytes passed with it are read
	}
	if c.rio != nil && c.pre == nil && c.br.Buffered() == 0 {
		if err := c.flushToWait(); err != nil {
			return err
		}
		c.putReader()
		err := c.rio.WaitReadable()
		c.takeReader()
		if err != nil {
			return err
		}
	}
	_, err := c.br.Peek(1)
	return err
}
