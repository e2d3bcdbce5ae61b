package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The first of RFC 9113 §6.8's two GOAWAYs. net/http's HTTP/2 server sends
// one GOAWAY, naming the last stream it has read: the requests its client
// sent meanwhile, on their way, are refused, and a client that keeps
// several in flight (a browser loading a page, h2load -m 10) lost all of
// them at every drain and upgrade. So a connection told to go gets,
// first, a GOAWAY that names stream 2^31-1 (refusing nothing: the client
// opens no new stream on it, and the ones on their way are served), and
// net/http's own only a second later (settle), by when the client has
// stopped sending. net/http offers no way to send a frame, so the
// connection it serves is an h2Conn: its tls.Conn, whose writes it
// follows frame by frame, to put the GOAWAY between two of net/http's
// frames.

// goAwayFirst is the first GOAWAY's frame: no error, last stream 2^31-1.
var goAwayFirst = []byte{0, 0, 8, frameGoAway, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// frameGoAway is GOAWAY's frame type.
const frameGoAway = 0x7

// h2Preface is what an HTTP/2 client sends first (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2PrefaceTimeout is how long a connection gets to send its preface: net/http's.
const h2PrefaceTimeout = 10 * time.Second

// h2Conn is a TLS connection served by net/http's HTTP/2 server, which
// can be told to go ahead of the server's GOAWAY (tell).
//
// Ownership: the frame state (written, gone) is the writer's, under mu;
// net/http writes one frame sequence at a time, tell from any goroutine.
type h2Conn struct {
	*tls.Conn
	mu      sync.Mutex
	written frames      // net/http's frames so far
	gone    bool        // net/http wrote a GOAWAY of its own: none of c's after it
	pending atomic.Bool // the first GOAWAY waits for the end of a frame
	told    atomic.Bool // tell ran: the first GOAWAY goes at most once
}

// frames follows a stream of HTTP/2 frames by their 9-byte heads.
type frames struct {
	hdr   [9]byte // the head of the frame under way, its first hn bytes
	hn    int     // 0 and left 0: between two frames
	left  int     // bytes of the frame's payload still to come
	begun bool    // a first head was whole: the server's SETTINGS, which comes first (RFC 9113 §3.4)
}

// step moves f past the bytes of p up to the end of the frame's head or
// payload under way, and returns how many it took, and whether a head
// became whole (f.hdr).
func (f *frames) step(p []byte) (int, bool) {
	if f.left > 0 {
		k := min(f.left, len(p))
		f.left -= k
		return k, false
	}
	k := copy(f.hdr[f.hn:], p)
	f.hn += k
	if f.hn < len(f.hdr) {
		return k, false
	}
	f.hn, f.left, f.begun = 0, int(f.hdr[0])<<16|int(f.hdr[1])<<8|int(f.hdr[2]), true
	return k, true
}

// between reports whether f is between two frames, past the first.
func (f *frames) between() bool { return f.begun && f.hn == 0 && f.left == 0 }

// tell sends c's first GOAWAY, now if net/http is between two frames,
// otherwise at the end of the frame it is writing (it writes every frame
// it began to its end); not at all once net/http has sent a GOAWAY of its
// own (its IdleTimeout's, an error's), whose last stream it would raise.
// The write is on a goroutine of its own: a client that reads nothing
// holds that one, not the caller.
func (c *h2Conn) tell() {
	if c.told.Swap(true) {
		return
	}
	c.pending.Store(true)
	go c.flush()
}

// flush sends the pending GOAWAY if no write is under way (one that is
// sends it, or flushes after it) and c is between two frames.
func (c *h2Conn) flush() {
	if !c.mu.TryLock() {
		return
	}
	if c.written.between() && c.pending.CompareAndSwap(true, false) && !c.gone {
		c.Conn.Write(goAwayFirst)
	}
	c.mu.Unlock()
}

// Write writes net/http's frames, and the pending GOAWAY at the first end
// of a frame among them.
func (c *h2Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	n, err := c.writeLocked(p)
	c.mu.Unlock()
	if c.pending.Load() { // set while this write held mu
		c.flush()
	}
	return n, err
}

func (c *h2Conn) writeLocked(p []byte) (int, error) {
	written := 0
	for {
		if c.written.between() && c.pending.CompareAndSwap(true, false) && !c.gone {
			if _, err := c.Conn.Write(goAwayFirst); err != nil {
				return written, err
			}
		}
		if len(p) == 0 {
			return written, nil
		}
		k := len(p)
		if c.pending.Load() {
			if end := c.frameEnd(p); end > 0 {
				k = end
			}
		}
		c.follow(p[:k])
		n, err := c.Conn.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
}

// follow moves the frame state past p, written.
func (c *h2Conn) follow(p []byte) {
	for len(p) > 0 {
		k, headed := c.written.step(p)
		p = p[k:]
		if headed && c.written.hdr[3] == frameGoAway { // net/http's own: a GOAWAY's last stream may not go up
			c.gone = true
			c.told.Store(true)
		}
	}
}

// frameEnd is how many bytes of p end the frame being written (the next
// one, between two or before the first), or 0 if that frame goes on past p.
func (c *h2Conn) frameEnd(p []byte) int {
	f := c.written
	for i := 0; i < len(p); {
		k, _ := f.step(p[i:])
		i += k
		if f.hn == 0 && f.left == 0 {
			return i
		}
	}
	return 0
}

// unencrypted hands net/http's HTTP/2 server an h2Conn: a *tls.Conn it
// unwraps (its "unencrypted_http2" hand-off) to serve the net.Conn inside,
// whose ConnectionState gives the requests their TLS state all the same.
type unencrypted struct{ net.Conn }

func (u unencrypted) UnencryptedNetConn() net.Conn { return u.Conn }

// wrapH2 makes srv serve its HTTP/2 connections as h2Conns, registered
// with sv: it sets up srv's HTTP/2 (a Serve that returns at once) and
// replaces its "h2" hand-off with one that reads the client's preface
// (as net/http would) and passes net/http's unencrypted hand-off an
// h2Conn instead.
func (sv *h2Server) wrapH2() error {
	ln := newConnListener()
	ln.Close()
	sv.srv.Serve(ln) // sets srv.TLSNextProto up
	inner := sv.srv.TLSNextProto["unencrypted_http2"]
	if inner == nil || sv.srv.TLSNextProto["h2"] == nil {
		return errors.New("proxy: net/http's HTTP/2 server is not set up")
	}
	sv.srv.TLSNextProto["h2"] = func(hs *http.Server, tc *tls.Conn, h http.Handler) {
		var preface [len(h2Preface)]byte
		tc.SetReadDeadline(time.Now().Add(h2PrefaceTimeout))
		if _, err := io.ReadFull(tc, preface[:]); err != nil || string(preface[:]) != h2Preface {
			tc.Close()
			return
		}
		tc.SetReadDeadline(time.Time{})
		hc := &h2Conn{Conn: tc}
		sv.states.serving(tc, hc)
		inner(hs, tls.Client(unencrypted{hc}, nil), h)
	}
	return nil
}
