package proxy

import (
	"errors"
	"fmt"
	"time"

	"smoothserve/upstream"
)

// response framing (RFC 9112 §6.3)
const (
	bodyNone = iota
	bodyLength
	bodyChunked
	bodyUntilClose
)

// maxInterim bounds the interim (1xx) responses read before the final one.
const maxInterim = 16

// exchange sends req to an instance over uc and relays the response. began
// says whether anything of the response reached the client (then a failure
// can only close the connection); keep whether the client connection may
// carry another request. uc is back in the pool or closed when it returns,
// but after a 101: then it is c.tunnelTo, for serveRequests to join to the
// client (joinTunnel); and but for a quiet stream to be parked
// (errParking): then c.rel has it, for serveRequests (streamOn).
func (c *conn) exchange(req *request, b *upstream.Backend, uc *upstream.Conn, kept bool) (keep, began bool, err error) {
	reusable := false
	uc.SetClient(c)
	defer func() {
		switch {
		case c.tunnelTo == uc: // serveRequests joins it to the client
		case reusable:
			b.Put(uc)
		case err == errParking: // c.rel has it (streampark.go)
		default:
			uc.Close()
		}
	}()

	c.buildUpstreamHead(req, kept, b.Addr)
	earlyAnswer, err := c.send(req, uc, kept)
	if err != nil {
		return false, false, err
	}
	if earlyAnswer {
		defer c.lingerClose()
	}
	// A client that leaves while the instance thinks is noticed too: the
	// instance's connection is closed, so its request can end, and the
	// request is logged 499, not sent again.
	uc.WatchGone(c.headTimeout)
	var resp response
	if err := c.readResponseHead(req, uc, &resp); err != nil {
		return false, false, err
	}
	if resp.status == 101 {
		began, err := c.switchProtocols(req, &resp, uc)
		return false, began, err
	}
	framing := framingOf(req, &resp)
	enc := c.encodingFor(req, &resp, framing)
	if enc != encNone {
		keep = !c.closing() && keepsAlive(req, bodyChunked)
	} else {
		keep = !c.closing() && keepsAlive(req, framing)
	}
	c.writeDeadline(time.Now())
	c.writeResponseHead(req, &resp, framing, keep, enc)
	// While the body streams, a client that leaves is noticed, and the
	// instance's connection closed, even while the instance is quiet (a
	// server-sent events stream between two events).
	uc.WatchClient()

	switch {
	case enc != encNone:
		err = c.relayCompressed(uc.R, &resp, framing, enc)
	case framing != bodyNone:
		err = c.relayBody(req, &resp, framing, keep, b, uc)
	}
	if err != nil {
		return false, true, clientOr(err)
	}
	if !keep {
		if err := c.Flush(); err != nil {
			return false, true, err
		}
	}
	// Otherwise the response is flushed when the connection next waits for
	// the client (clientReader): a client that pipelines gets its
	// responses in one write.
	reusable = resp.reusable(framing) && c.reusable(req, b, uc)
	return keep, true, nil
}

// send sends the request to the instance: its head c.out, and its body
// (the kept one with the head). earlyAnswer: the instance answered before
// it took the whole body (a 413, a 401), and the connection closes once
// that answer is relayed, the rest of the body unread.
func (c *conn) send(req *request, uc *upstream.Conn, kept bool) (earlyAnswer bool, err error) {
	if err := c.sendRequest(uc, kept); err != nil {
		return false, upstreamFailed(uc, "sending request", err)
	}
	if kept {
		return false, nil
	}
	if err := c.streamBody(req, uc); err != nil {
		if !errors.Is(err, errSendingBody) || !answeredEarly(uc) {
			return false, err
		}
		req.close = true
		return true, nil
	}
	return false, nil
}

// switchProtocols relays a 101 to a WebSocket upgrade and leaves uc for
// serveRequests to join to the client (c.tunnelTo); a 101 to any other
// request is a bad answer. began: the client was written to.
func (c *conn) switchProtocols(req *request, resp *response, uc *upstream.Conn) (began bool, err error) {
	if !req.websocket || !resp.websocket {
		return false, badResponse("101 Switching Protocols to a request that asked no WebSocket upgrade")
	}
	c.writeResponseHead(req, resp, bodyNone, false, encNone)
	if err := c.Flush(); err != nil {
		return true, err
	}
	uc.SetClient(nil)
	c.tunnelTo = uc
	return true, nil
}

// sendRequest writes the request head c.out (and the kept body) to the
// instance. When that is the whole request and nothing waits for the
// client, the write also waits for the answer to begin (WriteRequest):
// the response head's read then costs one system call, not two. The
// client's writer, empty, and its reader, if empty (nothing pipelined), go
// back to their pools for that wait: with thousands of clients, most wait
// for an instance at any time, and hold no buffer meanwhile.
func (c *conn) sendRequest(uc *upstream.Conn, kept bool) error {
	if !kept || c.bw.Buffered() > 0 || c.zw.active() {
		_, err := uc.Write(c.out)
		return err
	}
	lentReader := c.lendBuffers()
	uc.WatchGone(c.headTimeout) // WriteRequest's wait for the answer looks at the client too
	err := uc.WriteRequest(c.out)
	c.takeBuffersBack(lentReader)
	return err
}

// lendBuffers gives the client's writer, empty, and its reader, if empty
// (nothing pipelined), back to their pools for a wait for the instance,
// and reports whether it lent the reader; takeBuffersBack takes them again.
func (c *conn) lendBuffers() (lentReader bool) {
	lentReader = c.br.Buffered() == 0
	if lentReader {
		c.putReader()
	}
	c.putWriter()
	return lentReader
}

func (c *conn) takeBuffersBack(lentReader bool) {
	c.takeWriter()
	if lentReader {
		c.takeReader()
	}
}

// relayBody relays the body of resp, framed so, from the instance b over uc
// to the client. At an upgrade it may pass the response on to the new
// process from where it stands (errPassed); a quiet one may stop to be
// parked (errParking: c.rel is where it stands).
func (c *conn) relayBody(req *request, resp *response, framing int, keep bool, b *upstream.Backend, uc *upstream.Conn) error {
	if framing == bodyChunked && req.minor == 0 {
		// Decoded for an HTTP/1.0 client: finished here.
		c.dec.reset(uc.R)
		return c.copyBody(&c.dec, -1)
	}
	c.rel = relay{passable: true, parkable: c.parkableStream(req), framing: uint8(framing), keep: keep,
		reuse: resp.reusable(framing), uc: uc, b: b, addr: b.Addr}
	var err error
	switch framing {
	case bodyLength:
		err = c.copyBody(uc.R, resp.contentLength)
	case bodyChunked:
		err = c.relayChunked()
	default:
		err = c.copyBody(uc.R, -1)
	}
	if err != errParking {
		c.rel = relay{}
	}
	return err
}

// earlyAnswerWait is how long an instance that stopped reading a request
// body may take to show its answer.
const earlyAnswerWait = time.Second

// answeredEarly reports whether the instance, which stopped reading the
// request body, has an answer waiting.
func answeredEarly(uc *upstream.Conn) bool {
	uc.Socket.SetReadDeadline(time.Now().Add(earlyAnswerWait))
	_, err := uc.R.Peek(1)
	uc.Socket.SetReadDeadline(time.Time{})
	return err == nil
}

// framingOf says how the body of resp, the final answer to req, is
// delimited (RFC 9112 §6.3).
func framingOf(req *request, resp *response) int {
	return responseFraming(isHead(req.method), resp)
}

// responseFraming says how the body of resp, the final answer to a request
// (a HEAD one or another), is delimited; both protocols' paths use it.
func responseFraming(head bool, resp *response) int {
	switch {
	case head || resp.status == 204 || resp.status == 304:
		return bodyNone
	case resp.chunked:
		return bodyChunked
	case resp.contentLength >= 0:
		return bodyLength
	}
	return bodyUntilClose
}

// keepsAlive reports whether the client connection may carry another
// request after a response framed so: not when the client asked to close,
// nor when the body ends at the close, nor when a chunked body is decoded
// for an HTTP/1.0 client (it is sent until the close).
func keepsAlive(req *request, framing int) bool {
	return !req.close && framing != bodyUntilClose && !(framing == bodyChunked && req.minor == 0)
}

// reusable reports whether the connection that carried resp, framed so,
// may carry another request once its body is read: the instance did not
// say close, the body did not end at the close, and the response did not
// announce a body that was not to come (a 204 that announces one may send
// it yet; the next request on the connection would take it for its
// response).
func (resp *response) reusable(framing int) bool {
	return !resp.close && framing != bodyUntilClose && !(resp.status == 204 && (resp.chunked || resp.contentLength > 0))
}

// reusable reports whether uc, its response read, may carry another
// request: nothing more of the instance's is waiting in it.
func (c *conn) reusable(req *request, b *upstream.Backend, uc *upstream.Conn) bool {
	if uc.R.Buffered() > 0 {
		c.logUpstream(req, b, errors.New("instance sent bytes beyond its response"), "connection to the instance closed")
		return false
	}
	return true
}

// readResponseHead reads the instance's final response head into c.rhead
// and resp, passing interim responses (103 Early Hints) on to a client that
// understands them.
func (c *conn) readResponseHead(req *request, uc *upstream.Conn, resp *response) error {
	for n := 0; ; n++ {
		var err error
		c.rhead, err = readHead(uc.R, c.rhead, maxResponseHead, false)
		if errors.Is(err, errHeadTooLarge) {
			return badResponse(fmt.Sprintf("response head over %d bytes", maxResponseHead))
		}
		if err != nil {
			if len(c.rhead) > 0 || n > 0 {
				return clientOr(fmt.Errorf("reading response head: %w", err))
			}
			return upstreamFailed(uc, "reading response", err)
		}
		if err := c.parseResponse(resp); err != nil {
			return err
		}
		if resp.status >= 200 || resp.status == 101 {
			return nil
		}
		if n == maxInterim {
			return badResponse("too many interim responses")
		}
		// The instance never saw Expect (the proxy answers it), so a 100
		// is its own business; others go to an HTTP/1.1 client.
		if resp.status != 100 && req.minor == 1 {
			c.writeInterim(resp)
		}
	}
}

// writeInterim writes a 1xx response head canonically.
func (c *conn) writeInterim(resp *response) {
	head := c.rhead
	c.writeStatusLine(resp)
	for i := range c.rfield {
		if f := &c.rfield[i]; !f.id.hopByHop() {
			c.writeField(head, f)
		}
	}
	c.bw.WriteString("\r\n")
}

// upstreamFailed wraps a failure to send to or read from the instance
// before any byte of its response: on a pooled connection, it is the
// instance having closed it while idle (errStale), not the instance failing.
// Both protocols' paths use it.
func upstreamFailed(uc *upstream.Conn, what string, err error) error {
	if mapped := clientOr(err); mapped != err {
		return mapped
	}
	if errors.Is(err, upstream.ErrNoAnswer) {
		return fmt.Errorf("%s: %w", what, err) // slow, not stale
	}
	if uc.Reused {
		return fmt.Errorf("%w: %s: %w", errStale, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// clientOr maps a failed flush to the client, or the client found gone
// (met while reading from the instance), to errClientGone, and leaves other
// errors as they are.
func clientOr(err error) error {
	if errors.Is(err, upstream.ErrFlush) || errors.Is(err, upstream.ErrClientGone) {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return err
}

func isHead(m []byte) bool { return string(m) == "HEAD" }
