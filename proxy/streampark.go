package proxy

import (
	"errors"
	"syscall"
	"time"

	"smoothserve/upstream"
)

// A streamed response whose instance has been quiet for parkAfter (server-
// sent events between two events) is parked (park.go), as a quiet tunnel
// is: its goroutine ends, and the parker watches the client's socket and
// the instance's; bytes on either (the next event, the end, the client
// leaving) take it up again on a new goroutine, from where it stood. What
// stays is the conn with its relay (where the body stands), its
// streamState (the request, for the log line) and the two connections;
// the instance still counts it in flight, as it did. Only an HTTP/1.x
// connection (plain or TLS: its tls.Conn stays with it, as an idle one's,
// parkconn.go's parkable) whose request had no body, with nothing from its
// client waiting, at a wait in the relay's own terms (relay.passable). A
// response another process passed here mid-way (serveStream) is parked
// too, if its instance is known here. A TLS one is not passed at an
// upgrade, parked or not: it goes on here.
//
// The goroutine decides in WaitBody (upstream's ParkNow), deep in the
// relay, and unwinds to serveRequests with errParking: nothing on the way
// closes or releases what the stream holds (exchange, forward). There the
// stream is left to the parker (parkStream), or, if it cannot be, goes on
// at once on the same goroutine (goOnStream), as it does when woken
// (resumeStream). Once parked it is taken by its wake, PassConnections
// (a plain one, passed as it is: passParked), the end of a stop's grace
// (closeAllBut) and Close, or by its own goroutine, which takes its
// parking back when it sees, after registering, that the server began
// shutting down; no IdleTimeout applies, and draining leaves it be.

// errParking ends the relay of a stream that is to be parked: its state
// is in c.rel, and nothing the response holds is released on the way out.
var errParking = errors.New("the response is to be parked")

// streamState is what a parked stream's goroutine held on its stack.
type streamState struct {
	req request         // for the log line (its slices point into c.head, kept)
	t0  time.Time       // when the exchange began: the log line's upstream time
	raw syscall.RawConn // the instance's socket, for the parker
}

// parkableStream reports whether the stream relayBody begins for req may
// be parked when quiet (see above).
func (c *conn) parkableStream(req *request) bool {
	return c.srv.parkAfter > 0 && (c.pre == nil || len(c.pre.pre) == 0) && req.contentLength <= 0 && !req.chunked
}

// ParkNow is the upstream.Client's: a stream's wait for its instance that
// has lasted waited ends to park it (ErrPark) once it has waited parkAfter,
// where the relay can stop, with nothing from the client waiting (in the
// reader, lent when empty, or read ahead over TLS, or in the socket:
// clientSent) and the server not shutting down.
func (c *conn) ParkNow(waited time.Duration) bool {
	return c.rel.parkable && c.rel.passable && waited >= c.srv.parkAfter && !c.srv.shutting.Load() &&
		(c.br == nil || c.br.Buffered() == 0) && !c.clientSent()
}

func isPark(err error) bool { return errors.Is(err, upstream.ErrPark) }

// streamOn parks the stream that unwound with errParking (c.strm), or, if
// it cannot be, relays the rest of it here. parked: the parker's now, and
// the caller must not touch c again; if not, the stream has ended, and
// more says whether the connection carries another request.
func (c *conn) streamOn() (parked, more bool) {
	if c.parkStream() {
		return true, false
	}
	return c.goOnStream()
}

// goOnStream relays the rest of the stream c.rel stands in, on this
// goroutine, until it ends (then as exchange and forward end a response:
// endStream) or parks again.
func (c *conn) goOnStream() (parked, more bool) {
	for {
		err := c.resumeBody()
		if !errors.Is(err, errParking) {
			return false, c.endStream(err)
		}
		if c.parkStream() {
			return true, false
		}
	}
}

// parkStream leaves the stream, its relay stopped where it stands, to the
// parker with what it holds given back: the client's buffers, the scratch
// slices but the request's head, the instance's reader. It reports whether
// it did: then it is the parker's (or its taker's), and this goroutine must
// not touch it again; if not, it has its buffers again.
func (c *conn) parkStream() bool {
	st, uc := c.strm, c.rel.uc
	if st.raw == nil {
		raw, err := uc.Socket.SyscallConn()
		if err != nil {
			c.rel.parkable = false // it never will be
			return false
		}
		st.raw = raw
	}
	if c.socket() == nil {
		c.rel.parkable = false
		return false
	}
	if c.Flush() != nil {
		return false // the client is gone: the relay finds that out
	}
	c.flushLog()
	c.releaseScratchButHead()
	c.putReader()
	c.putWriter()
	uc.Rest()
	p := c.srv.parker
	ok, seq := p.register(c, true, c.raw, st.raw) // the client's socket and the instance's
	if ok {
		// Shutdown and Close set the flag before they look for parked
		// streams: one of the two sees the other, and the parker's lock
		// decides.
		if !c.srv.shutting.Load() || !p.takeParking(c, seq) {
			return true
		}
	}
	// Not parked, nor to be (shutting down, or the parker cannot watch
	// it): it keeps its goroutine to its end.
	c.rel.parkable = false
	c.startIO()
	uc.Wake()
	return false
}

// resumeStream takes a parked stream up again, on a goroutine of its own,
// and then the connection's next requests.
func (c *conn) resumeStream() {
	c.startIO()
	c.rel.uc.Wake()
	c.streamThenRequests()
}

// streamThenRequests goes on with the stream c.strm, then with the
// connection's next requests, on this goroutine, until the connection
// ends or parks.
func (c *conn) streamThenRequests() {
	st := c.strm
	parked, more := c.goOnStreamRecovered()
	switch {
	case parked:
		return
	case c.strm != nil: // its relay panicked: close abandons it
		more = false
	case st.req.method != nil: // not one passed here: the passing process logged that
		more = c.requestDone(&st.req, more)
	}
	if !more || !c.serveOrPark() {
		c.close()
	}
}

// goOnStreamRecovered is goOnStream with a panic logged, as serveOrPark
// does for a connection's requests.
func (c *conn) goOnStreamRecovered() (parked, more bool) {
	defer c.recoverPanic()
	return c.goOnStream()
}

// endStream ends a stream that went on after errParking (or was passed
// here: serveStream), with the relay's result err, as exchange and forward
// end a response that was relayed without a stop: the instance's
// connection pooled or closed, the instance's count released, a failure
// logged. It reports whether the connection carries another request. A
// stream passed here has no request (st.req), and may have no instance
// known here (r.b nil): nothing is pooled or counted then.
func (c *conn) endStream(err error) (more bool) {
	st, r := c.strm, c.rel
	c.strm, c.rel = nil, relay{}
	err = clientOr(err)
	if err == nil && !r.keep {
		err = c.Flush()
	}
	if err == nil && r.reuse && r.b != nil && c.reusable(&st.req, r.b, r.uc) {
		r.b.Put(r.uc)
	} else {
		r.uc.Close()
	}
	if r.b != nil {
		r.b.Release(err == nil)
	}
	c.rec.upstream += time.Since(st.t0)
	switch {
	case err == nil:
		return r.keep
	case errors.Is(err, errPassed):
	case errors.Is(err, errClientGone): // the client left: no failure of the instance
	case st.req.method == nil:
		c.srv.opts.Logger.Warn("proxy: a response passed by the previous process failed; connection closed",
			"addr", r.addr, "request_id", string(c.rid), "err", err)
	default:
		c.logUpstream(&st.req, r.b, err, "connection closed")
	}
	return false
}

// abandonStream ends a parked stream that goes on nowhere here (closed, or
// passed to another process): its connection to the instance closed (this
// process's descriptor), the instance's count released, its request
// logged.
func (c *conn) abandonStream() {
	st, r := c.strm, c.rel
	c.strm, c.rel = nil, relay{}
	r.uc.Close()
	if r.b != nil {
		r.b.Release(false)
	}
	c.rec.upstream += time.Since(st.t0)
	c.endRequest(&st.req)
	c.flushLog()
}

// relayHandover is what passing the response being relayed hands over of
// the instance's side: its connection, what was read of it and not yet
// relayed (nothing when parked: its reader is in the pool then), and
// where the body stands.
func (c *conn) relayHandover() *Handover {
	r := &c.rel
	h := &Handover{Instance: r.uc.Socket, InstanceAddr: r.addr, Stream: r.encode(c.rid)}
	if r.uc.R != nil {
		h.InstanceBuffered = r.uc.Unread()
	}
	return h
}
