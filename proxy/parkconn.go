package proxy

import (
	"io"
	"sync"
	"time"

	"smoothserve/accesslog"
)

// A connection's side of parking (park.go has the parker's): when it may
// be parked and its deadline for that, leaving itself to the parker with
// what it holds given back, being taken up again (wake) or closed while
// parked, and the per-request scratch slices it gives back and takes again.

// parkResult is what came of parking a connection.
type parkResult uint8

const (
	parkFailed parkResult = iota // it could not be registered: its goroutine goes on with it, as woken
	parked                       // the parker (or whoever took it from there) has it
	parkUndone                   // the server began shutting down or draining: its goroutine took it back, as woken
)

// parkable reports whether c may be parked when it has idled: an HTTP/1.x
// connection with nothing pending but in the socket. Over TLS too: it is
// parked only after a read of it timed out (waitForRequest), and a
// tls.Conn's Read returns what it holds (decrypted bytes, or a whole
// record read ahead) before it reads the socket, so one whose read timed
// out holds at most part of a record, whose rest the socket will bring;
// the timeout does not break it (crypto/tls keeps only errors that are
// not temporary). The TLS state stays with it, parked or not.
func (c *conn) parkable() bool {
	return c.srv.parkAfter > 0 && (c.pre == nil || len(c.pre.pre) == 0) && !c.keepHere
}

// parkDeadline makes sure the wait for the next request ends within
// parkAfter, and after at least half of it: renewed at most once in half
// of it, so a busy connection does not pay for a timer per request.
func (c *conn) parkDeadline(now time.Time) {
	d := c.srv.parkAfter
	if c.readKind == readPark && c.readBy.Sub(now) > d/2 {
		return
	}
	c.readBy, c.readKind = now.Add(d), readPark
	c.nc.SetReadDeadline(c.readBy)
}

// park leaves c to the parker: its buffers go back to their pools and, when
// parked, its goroutine must not touch it again.
func (c *conn) park() parkResult {
	c.flushLog()
	c.release()
	r := c.leaveToParker(true)
	if r != parked {
		c.start()
	}
	return r
}

// leaveToParker registers c, which holds no buffers, with the parker; if
// the result is parked, c is the parker's (or its remover's), and its
// caller must not touch it again.
func (c *conn) leaveToParker(gaveBack bool) parkResult {
	ok, seq := c.parkNow(gaveBack)
	if !ok {
		return parkFailed
	}
	p := c.srv.parker
	// The flags are read after the state says parked; Shutdown, SetDraining
	// and Close set theirs before they look at the states: one of the two
	// sees the other, and p.take decides who has it.
	if s := c.srv; s.shutting.Load() || s.draining.Load() {
		if p.takeParking(c, seq) {
			return parkUndone
		}
	}
	return parked
}

// parkNow registers c with the parker as parked, and reports whether it
// is, and its parking's number.
func (c *conn) parkNow(gaveBack bool) (ok bool, seq uint32) {
	c.woke = true // whoever resumes it: the wait goes on from idleSince
	c.readBy, c.readKind = time.Time{}, readOther
	c.state.Store(stateParked)
	ok, seq = c.srv.parker.park(c, gaveBack)
	if ok {
		if h := c.srv.opts.parkedHook; h != nil {
			h(c)
		}
	}
	return ok, seq
}

// closeParked closes a connection taken from the parker. A TLS one's
// Close writes a close_notify first, which waits up to 5 s for room in the
// socket of a client that stopped reading: it closes on a goroutine of its
// own, so that neither the parker's sweep nor SetDraining nor Close waits
// for it.
func (c *conn) closeParked() {
	if c.secure {
		go c.closeParkedNow()
		return
	}
	c.closeParkedNow()
}

func (c *conn) closeParkedNow() {
	c.nc.Close()
	if t := c.tn; t != nil {
		t.uc.Close()
		c.endTunnel()
	}
	if c.strm != nil {
		c.abandonStream()
	}
	c.srv.forget(c)
}

// wake takes up a connection taken from the parker, on the calling
// goroutine, as what it was: one waiting for its next request, a tunnel,
// or a stream.
func (c *conn) wake() {
	switch {
	case c.tn != nil:
		c.resumeTunnel()
	case c.strm != nil:
		c.resumeStream()
	default:
		c.serve()
	}
}

// scratch is a parked connection's per-request slices, for another to use.
type scratch struct {
	head, out, rhead, body []byte
	fields, rfield         []field
}

var scratchPool sync.Pool

// release gives c's buffers and scratch slices back to their pools, and
// forgets what the last request left pointing into them.
func (c *conn) release() {
	c.putReader()
	c.putWriter()
	c.lendWriter = false
	if c.head != nil || c.fields != nil || c.out != nil || c.rhead != nil || c.rfield != nil || c.body != nil {
		scratchPool.Put(&scratch{head: c.head[:0], out: c.out[:0], rhead: c.rhead[:0], body: c.body[:0],
			fields: c.fields[:0], rfield: c.rfield[:0]})
	}
	c.head, c.fields, c.out, c.rhead, c.rfield, c.body = nil, nil, nil, nil, nil, nil
	c.entry = accesslog.Entry{}
	c.dec, c.lim, c.cw = chunkedDecoder{}, io.LimitedReader{}, chunkWriter{}
	c.rec = record{start: c.rec.start}
}

// releaseScratchButHead gives back the scratch slices a tunnel does not
// use: all but the request's head and fields, which its log line reads.
func (c *conn) releaseScratchButHead() {
	if c.out != nil || c.rhead != nil || c.rfield != nil || c.body != nil {
		scratchPool.Put(&scratch{out: c.out[:0], rhead: c.rhead[:0], body: c.body[:0], rfield: c.rfield[:0]})
	}
	c.out, c.rhead, c.rfield, c.body = nil, nil, nil, nil
}

// acquire takes scratch slices from the pool, if it has some.
func (c *conn) acquire() {
	if c.head != nil {
		return
	}
	if sc, _ := scratchPool.Get().(*scratch); sc != nil {
		c.head, c.out, c.rhead, c.body, c.fields, c.rfield = sc.head, sc.out, sc.rhead, sc.body, sc.fields, sc.rfield
	}
}
