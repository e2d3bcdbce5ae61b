package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"smoothserve/upstream"
)

// maxAttempts bounds how many instances one request is tried on.
const maxAttempts = 6

// maxSends bounds how many instances one request is sent to. One that an
// instance got and failed without answering (it closed the connection, or
// died) goes to one more, and no further: a request that kills its
// instance kills at most one more (the replacement it would wait for
// next, and the next), as nginx's once-per-server does with two. Those
// that failed to connect (nothing sent) are tried up to maxAttempts. The
// second send to the same instance after its pooled connection closed
// (errStale) is not counted: that close is, as a rule, the instance's idle
// close or its death (kill -9: the dial may still reach its listen queue),
// and the request must go on; a prefork server's worker that dies of the
// request is met twice an instance so.
const maxSends = 2

// freshIdle is the longest a pooled connection may have been idle to carry
// a request that cannot be sent again (see upstream.Backend.Get).
const freshIdle = 100 * time.Millisecond

// deathGrace is how long a request that failed on every instance in
// rotation waits for one of them to leave it (its death noticed by the
// supervisor) before it is answered 502: instances that are alive and fail
// it will fail it again.
const deathGrace = 250 * time.Millisecond

// serveRequest answers one request and reports whether the connection may
// carry another.
func (c *conn) serveRequest(req *request) bool {
	c.setRequestID(req)
	var tg *target
	if pt := c.srv.routes.Load().ports[c.port]; pt != nil {
		tg = pt.lookup(req.host)
	}
	c.rec.tg = tg
	hasBody := req.contentLength > 0 || req.chunked
	if !c.secure && c.srv.opts.HTTPChallenge != nil && isChallenge(req.target) {
		return c.answerChallenge(req, hasBody)
	}
	set := tg.setOrNil()
	if set == nil {
		return c.fail(req, fmt.Errorf("%w %q on port %d", errNoHost, req.host, c.port), !hasBody)
	}
	if tg.httpsPort != 0 && !c.secure && !c.httpsInFront(req) {
		return c.redirect(req, tg.httpsPort, tg.hostName, hasBody)
	}
	if set.Stopped() {
		return c.fail(req, fmt.Errorf("%w: %s", errServiceStopped, set.Name), !hasBody)
	}
	c.maxBody, c.headTimeout = set.MaxBodySize(), set.ResponseHeaderTimeout()
	c.compress = set.Compress()
	kept, err := c.readBody(req)
	if err != nil {
		return c.fail(req, err, false)
	}
	return c.forward(req, set, kept)
}

// forward sends req to an instance of set, and to others while that can do
// no harm, and relays the answer. It reports whether the connection may
// carry another request; false too for a quiet stream to be parked
// (c.strm), which goes on in serveRequests (streamOn).
func (c *conn) forward(req *request, set *upstream.Set, kept bool) bool {
	p := picker{set: set, client: c}
	defer p.done()
	maxIdle := time.Duration(0)
	if !kept || !idempotent(req.method) {
		maxIdle = freshIdle
	}
	for attempt := 0; ; attempt++ {
		b, err := p.next()
		if err != nil {
			return c.fail(req, err, kept)
		}
		uc, err := c.srv.get(b, maxIdle)
		if err != nil {
			// Nothing was sent: any request may go elsewhere.
			b.Release(false)
			p.failed(b, err)
			c.logUpstream(req, b, err, "trying another instance")
			if attempt+1 >= maxAttempts {
				return c.fail(req, err, kept)
			}
			continue
		}
		c.rec.b, c.rec.retried = b, attempt > 0
		t0 := time.Now()
		p.sent()
		keep, began, err := c.exchange(req, b, uc, kept)
		if err != nil && !began && errors.Is(err, errStale) && kept && (idempotent(req.method) || errors.Is(err, upstream.ErrStaleNotSent)) {
			// The instance had closed the pooled connection (its idle
			// timeout) as the request went out: not a failure of the
			// instance. Once more, on a connection of its own.
			c.srv.opts.Logger.Debug("proxy: pooled connection was closed by the instance; sending again",
				"service", b.Service, "slot", b.Slot, "request_id", string(c.rid), "err", err)
			stale := err
			if uc, err = c.srv.dial(b); err == nil {
				c.rec.retried = true
				keep, began, err = c.exchange(req, b, uc, kept)
			} else {
				err = afterStale(err, stale)
			}
		}
		if err == errParking {
			// A quiet stream, to be parked: serveRequests parks it, or
			// goes on with it (streamOn). It holds uc and b till its end.
			c.strm = &streamState{t0: t0}
			return false
		}
		b.Release(err == nil)
		c.rec.upstream += time.Since(t0)
		if c.tunnelTo != nil {
			// A WebSocket is not a request in flight: the instance's drain
			// does not wait for it, and the instance gets SIGTERM while it
			// is open, to close it as it sees fit. It ends when either
			// side closes (the instance's exit closes its end).
			// serveRequests joins it to the client, past this call:
			// a quiet tunnel is parked, and no goroutine stays in it.
			return false
		}
		switch {
		case err == nil:
			return keep
		case errors.Is(err, errPassed):
			return false
		case !began && errors.Is(err, errClientGone):
			// Gone before any answer (mid-upload, or while the instance
			// thought): logged and counted 499, as by nginx; the
			// instance did not fail.
			c.rec.status = statusCode499
			return false
		case began && errors.Is(err, errBadChunk) && c.unsend():
			// A malformed chunk in the read that brought the head: none
			// of the answer had left, so the client gets a 502 rather
			// than a close without a byte (logged as the bytes dropped).
			c.logUpstream(req, b, err, "answered 502")
			return c.fail(req, fmt.Errorf("%w: %w", errBadResponse, err), kept)
		case began && errors.Is(err, errClientGone):
			// Gone during the answer (an event stream closed, a
			// download given up): the instance did not fail.
			return false
		case began:
			c.logUpstream(req, b, err, "connection closed")
			return false
		case clientFault(err):
			return c.fail(req, err, false)
		case errors.Is(err, errBadResponse):
			// The instance is alive and answered nonsense: asking
			// another would not make the answer better.
			c.logUpstream(req, b, err, "answered 502")
			return c.fail(req, err, kept)
		case errors.Is(err, upstream.ErrNoAnswer):
			// Slow, not dead: another would take as long, and the
			// request may be under way at this one (as HAProxy's
			// timeout server; nginx would send a GET again).
			c.logUpstream(req, b, err, "answered 504")
			return c.fail(req, err, kept)
		case kept && idempotent(req.method) && attempt+1 < maxAttempts && p.mayResend():
			p.failed(b, err)
			c.logUpstream(req, b, err, "retrying on another instance")
			continue
		}
		c.logUpstream(req, b, err, notResent(req, err, kept, attempt))
		return c.fail(req, err, kept)
	}
}

// notResent is the action logged for a request an instance failed
// without answering that does not go to another: the error it gets, and
// why it is not sent again.
func notResent(req *request, err error, kept bool, attempt int) string {
	why := "it was sent again once already"
	switch {
	case !idempotent(req.method):
		why = "a " + string(req.method) + " is not sent again"
	case !kept:
		why = "its body was streamed"
	case attempt+1 >= maxAttempts:
		why = "no attempt left"
	}
	return fmt.Sprintf("answered %d (%s)", statusFor(err), why)
}

// fail answers req with the status its error maps to, and logs why under
// the request's id. consumed says whether the request body has been read,
// so that the connection could go on.
func (c *conn) fail(req *request, err error, consumed bool) bool {
	code := statusFor(err)
	c.rec.status = code
	if code == statusCode499 {
		return false
	}
	keep := consumed && !req.close && !c.closing()
	level := slog.LevelInfo
	if code >= 500 {
		level = slog.LevelWarn
	}
	c.srv.opts.Logger.Log(context.Background(), level, "proxy: request answered with an error",
		"status", code, "request_id", string(c.rid), "client", string(c.clientIP), "port", c.port,
		"method", string(req.method), "host", string(req.host), "target", clip(req.target), "err", err)
	c.writeError(code, keep, isHead(req.method))
	if !consumed {
		c.lingerClose()
	}
	return keep
}

func (c *conn) logUpstream(req *request, b *upstream.Backend, err error, action string) {
	c.srv.opts.Logger.Warn("proxy: instance failed", "service", b.Service, "slot", b.Slot,
		"addr", b.Addr, "request_id", string(c.rid), "method", string(req.method),
		"target", clip(req.target), "err", err, "action", action)
}

// lingerClose reads and drops what the client still sends, for a moment,
// before the connection closes with a request body unread: closing at once
// would reset the connection, and the client might never read the error.
func (c *conn) lingerClose() {
	cw, ok := c.nc.(interface{ CloseWrite() error }) // TCP, or TLS (a close_notify)
	if !ok {
		return
	}
	c.bw.Flush()
	cw.CloseWrite()
	c.setReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, c.br, lingerBytes)
}

// How long, and how much, lingerClose reads.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 1 << 20
)

// readBody reads a request body of up to maxKeptBody into c.body, so the
// request can be sent again. It reports whether the whole body is kept; if
// not, the rest is streamed to the instance after the head.
func (c *conn) readBody(req *request) (kept bool, err error) {
	c.body = c.body[:0]
	if req.contentLength <= 0 && !req.chunked {
		return true, nil
	}
	if c.maxBody > 0 && req.contentLength > c.maxBody {
		return false, errBodyTooLarge
	}
	if req.expect100 && req.minor == 1 { // never to HTTP/1.0 (RFC 9110 §10.1.1)
		// The instance never sees Expect (the body is read here first),
		// so the client's go-ahead must come from here.
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.Flush(); err != nil {
			return false, err
		}
	}
	c.bodyReadDeadline(time.Now())
	if !req.chunked {
		if req.contentLength > maxKeptBody {
			return false, nil
		}
		n := int(req.contentLength)
		c.body = grow(c.body, n)
		if _, err := io.ReadFull(c.br, c.body[:n]); err != nil {
			return false, clientBodyError(err)
		}
		c.body = c.body[:n]
		return true, nil
	}
	c.dec.reset(c.br)
	c.body = grow(c.body, 4096)
	for len(c.body) < maxKeptBody {
		if len(c.body) == cap(c.body) {
			c.body = grow(c.body, min(2*cap(c.body), maxKeptBody))
		}
		c.bodyReadDeadline(time.Now())
		n, err := c.dec.Read(c.body[len(c.body):cap(c.body)])
		c.body = c.body[:len(c.body)+n]
		if c.maxBody > 0 && int64(len(c.body)) > c.maxBody {
			return false, errBodyTooLarge
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, clientBodyError(err)
		}
	}
	return false, nil
}

// clientBodyError says what a failure to read a request body was: a
// malformed chunked body (400), a client that stalled (408), or one that
// went away.
func clientBodyError(err error) error {
	switch {
	case errors.Is(err, errBadChunk):
		return fmt.Errorf("%w: %w", errBadRequest, err)
	case isTimeout(err):
		return fmt.Errorf("%w: %w", errBodyTimeout, err)
	}
	return fmt.Errorf("%w: reading body: %w", errClientGone, err)
}

// clientFault reports whether a failure during an exchange was the
// client's (its body), not the instance's.
func clientFault(err error) bool {
	return errors.Is(err, errBadRequest) || errors.Is(err, errBodyTimeout) || errors.Is(err, errBodyTooLarge)
}

// grow returns b with capacity for n bytes, keeping its contents.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b
	}
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
}

// setRequestID sets c.rid for req: the X-Request-Id a trusted proxy sent,
// or a new random one.
func (c *conn) setRequestID(req *request) {
	if c.trusted && len(req.id) > 0 && len(req.id) <= maxRequestID && isToken(req.id) {
		c.rid = append(c.rid[:0], req.id...)
		return
	}
	c.rid = appendNewRequestID(c.rid[:0])
}

// appendNewRequestID appends a new request id: 32 random hex digits.
func appendNewRequestID(b []byte) []byte {
	return appendHex64(appendHex64(b, rand.Uint64()), rand.Uint64())
}

// maxRequestID bounds an X-Request-Id taken from a trusted proxy.
const maxRequestID = 128

func appendHex64(b []byte, x uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[x>>uint(shift)&0xf])
	}
	return b
}

// afterStale is err, the failure to connect again after a pooled
// connection turned out closed (stale), saying so: the log of a request
// sent again then tells both.
func afterStale(err, stale error) error {
	return fmt.Errorf("%w (sending again after: %v)", err, stale)
}
