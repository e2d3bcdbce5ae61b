package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"smoothserve/upstream"
)

// A response still streaming at an upgrade (server-sent events, a long
// download) is passed to the new process from where it stands, at its next
// wait for the instance (upstream.ErrPass): the client's and the
// instance's connections, the bytes read from either and not yet used, and
// the relay below. Only a body read in the relay's own terms can stop
// there: a length, chunks passed on chunk by chunk, or bytes up to the
// close; a chunked body decoded for an HTTP/1.0 client, or one in its
// trailer, is finished here (or cut when the upgrade's drain ends).

// relay is where the response body being relayed stands.
type relay struct {
	passable bool // a read that would wait for the instance may stop here to pass the response on (PassNow), or park it (ParkNow)
	parkable bool // the response may be parked when quiet (streampark.go)

	framing uint8 // bodyLength, bodyChunked (chunk by chunk), bodyUntilClose
	inChunk bool  // chunked: in a chunk's data (left bytes of it, then its CRLF); otherwise before a size line
	keep    bool  // the client's connection carries another request after this response
	reuse   bool  // the instance's connection may be pooled after it, if nothing follows the body
	left    int64 // bodyLength: bytes left; chunked and inChunk: bytes left of the chunk

	uc   *upstream.Conn
	b    *upstream.Backend // nil when a passed response's instance is not known here
	addr string            // the instance's address
}

// errPassed ends a response that went on in another process: nothing more
// is written to the client here, and nothing logged as a failure.
var errPassed = errors.New("the response was passed on to another process")

// The encoding of a relay, after a version byte: framing, flags, left,
// then the request id.
const (
	relayVersion = 1
	relayHeader  = 1 + 1 + 1 + 8
	maxRelayID   = 255
)

const (
	flagInChunk = 1 << iota
	flagKeep
	flagReuse
)

func (r *relay) encode(rid []byte) []byte {
	var flags byte
	for _, f := range []struct {
		on  bool
		bit byte
	}{{r.inChunk, flagInChunk}, {r.keep, flagKeep}, {r.reuse, flagReuse}} {
		if f.on {
			flags |= f.bit
		}
	}
	b := append(make([]byte, 0, relayHeader+len(rid)), relayVersion, r.framing, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(r.left))
	return append(b, rid[:min(len(rid), maxRelayID)]...)
}

// decode reads what encode wrote, and the request id it carries (for the
// log lines of the rest of the response).
func (r *relay) decode(b []byte) (rid []byte, err error) {
	if len(b) < relayHeader || b[0] != relayVersion {
		return nil, fmt.Errorf("proxy: a passed response's state (%d bytes) is not one this version reads", len(b))
	}
	r.framing, r.left = b[1], int64(binary.BigEndian.Uint64(b[3:]))
	flags := b[2]
	r.inChunk, r.keep, r.reuse = flags&flagInChunk != 0, flags&flagKeep != 0, flags&flagReuse != 0
	switch {
	case r.framing != bodyLength && r.framing != bodyChunked && r.framing != bodyUntilClose:
		return nil, fmt.Errorf("proxy: a passed response's framing %d is unknown", r.framing)
	case r.framing == bodyUntilClose != (r.left < 0) || r.framing == bodyLength && r.left == 0:
		return nil, fmt.Errorf("proxy: a passed response with %d bytes left", r.left)
	}
	return b[relayHeader:], nil
}

// passStream passes the response being relayed on from where it stands:
// left bytes of the body or of the chunk. It reports whether it did; if
// not, the response goes on here.
func (c *conn) passStream(left int64) bool {
	if c.Flush() != nil {
		return false // the client is gone: the next read says so
	}
	r := &c.rel
	r.left = left
	if !c.pass(c.relayHandover(), &c.srv.passStats.Streams) {
		r.passable = false
		c.keepBy = time.Time{} // the grace for the next request starts when the response is done
		return false
	}
	return true
}

// isPass reports whether err is a read stopped for passing (upstream.ErrPass).
func isPass(err error) bool { return errors.Is(err, upstream.ErrPass) }

// serveStream serves a response passed by another process in the middle
// of its body, then the connection's next requests. Its request is not
// known here (the passing process logged it); quiet, it is parked as one
// begun here (streampark.go) if its instance is known.
func (c *conn) serveStream(uc *upstream.Conn, r *relay, rid []byte) {
	c.state.Store(stateActive) // a request in flight
	c.start()
	c.rid = append(c.rid[:0], rid...)
	r.uc = uc
	r.parkable = r.b != nil && c.parkableStream(&request{})
	c.rel = *r
	c.strm = &streamState{t0: time.Now()}
	uc.SetClient(c)
	uc.WatchClient()
	c.streamThenRequests()
}

// resumeBody relays the rest of the body c.rel stands in.
func (c *conn) resumeBody() error {
	r := &c.rel
	r.passable = true
	defer func() { r.passable = false }()
	switch r.framing {
	case bodyLength:
		return c.copyBody(r.uc.R, r.left)
	case bodyUntilClose:
		return c.copyBody(r.uc.R, -1)
	}
	if r.inChunk {
		if err := c.chunkData(r.left); err != nil {
			return err
		}
	}
	return c.relayChunked()
}
