package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"smoothserve/upstream"
)

// maxAttempts bounds how many instances one request is tried on.
const maxAttempts = 6

// serveRequest answers one request and reports whether the connection may
// carry another.
func (c *conn) serveRequest(req *request) bool {
	var set *upstream.Set
	if pt := c.srv.routes.Load().ports[c.port]; pt != nil {
		set = pt.lookup(req.host)
	}
	hasBody := req.contentLength > 0 || req.chunked
	if set == nil {
		return c.fail(req, fmt.Errorf("%w %q on port %d", errNoHost, req.host, c.port), !hasBody)
	}
	if set.Stopped() {
		return c.fail(req, fmt.Errorf("%w: %s", errServiceStopped, set.Name), !hasBody)
	}

	kept, err := c.readBody(req)
	if err != nil {
		return c.fail(req, err, false)
	}

	var tried upstream.Tried
	var waitCtx context.Context
	for attempt := 0; ; attempt++ {
		b := set.Pick(&tried)
		if b == nil {
			if waitCtx == nil {
				var cancel context.CancelFunc
				waitCtx, cancel = context.WithTimeout(context.Background(), set.StartTimeout())
				defer cancel()
			}
			if attempt < maxAttempts && set.Wait(waitCtx, &tried) {
				continue
			}
			if set.Stopped() {
				return c.fail(req, fmt.Errorf("%w: %s", errServiceStopped, set.Name), kept)
			}
			return c.fail(req, fmt.Errorf("%w for %s within %v", errNoInstance, set.Name, set.StartTimeout()), kept)
		}
		uc, err := b.Get()
		if err != nil {
			// Nothing was sent: any request may go elsewhere.
			b.Release(false)
			tried.Add(b)
			c.logUpstream(req, b, err, "trying another instance")
			if attempt+1 >= maxAttempts {
				return c.fail(req, err, kept)
			}
			continue
		}
		keep, began, err := c.exchange(req, b, uc, kept)
		b.Release(err == nil)
		if err == nil {
			return keep
		}
		if began || errors.Is(err, errClientGone) {
			c.logUpstream(req, b, err, "connection closed")
			return false
		}
		if kept && idempotent(req.method) && attempt+1 < maxAttempts {
			tried.Add(b)
			c.logUpstream(req, b, err, "retrying on another instance")
			continue
		}
		c.logUpstream(req, b, err, "")
		return c.fail(req, err, kept)
	}
}

// fail answers req with the status its error maps to. consumed says whether
// the request body has been read, so that the connection could go on.
func (c *conn) fail(req *request, err error, consumed bool) bool {
	code := statusFor(err)
	if code == statusCode499 {
		return false
	}
	keep := consumed && !req.close && !c.closing()
	c.writeError(code, "smoothserve: "+err.Error(), keep)
	return keep
}

func (c *conn) logUpstream(req *request, b *upstream.Backend, err error, action string) {
	c.srv.opts.Logger.Warn("proxy: instance failed", "service", b.Service, "slot", b.Slot,
		"addr", b.Addr, "method", string(req.method), "target", string(req.target), "err", err, "action", action)
}

// readBody reads a request body of up to maxKeptBody into c.body, so the
// request can be sent again. It reports whether the whole body is kept; if
// not, the rest is streamed to the instance after the head.
func (c *conn) readBody(req *request) (kept bool, err error) {
	c.body = c.body[:0]
	if req.contentLength <= 0 && !req.chunked {
		return true, nil
	}
	if req.expect100 {
		// The instance never sees Expect (the body is read here first),
		// so the client's go-ahead must come from here.
		c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.bw.Flush(); err != nil {
			return false, fmt.Errorf("%w: %w", errClientGone, err)
		}
	}
	c.idleReadDeadline(time.Now())
	if !req.chunked {
		if req.contentLength > maxKeptBody {
			return false, nil
		}
		n := int(req.contentLength)
		c.body = grow(c.body, n)
		if _, err := io.ReadFull(c.br, c.body[:n]); err != nil {
			return false, fmt.Errorf("%w: reading body: %w", errClientGone, err)
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
		n, err := c.dec.Read(c.body[len(c.body):cap(c.body)])
		c.body = c.body[:len(c.body)+n]
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, clientBodyError(err)
		}
	}
	return false, nil
}

func clientBodyError(err error) error {
	if errors.Is(err, errBadChunk) {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	return fmt.Errorf("%w: reading body: %w", errClientGone, err)
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
