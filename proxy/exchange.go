package proxy

import (
	"fmt"
	"io"
	"strconv"
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

// exchange sends req to an instance over uc and relays the response. began
// says whether anything of the response reached the client (then a failure
// can only close the connection); keep whether the client connection may
// carry another request. uc is back in the pool or closed when it returns.
func (c *conn) exchange(req *request, b *upstream.Backend, uc *upstream.Conn, kept bool) (keep, began bool, err error) {
	reusable := false
	defer func() {
		if reusable {
			b.Put(uc)
		} else {
			uc.Close()
		}
	}()

	c.buildUpstreamHead(req, kept, b.Addr)
	if _, err := uc.Write(c.out); err != nil {
		return false, false, fmt.Errorf("sending request to %s#%d: %w", b.Service, b.Slot, err)
	}
	if !kept {
		if err := c.streamBody(req, uc); err != nil {
			return false, false, err
		}
	}

	var status int
	for {
		c.rhead, err = readHead(uc.R, c.rhead, 64<<10)
		if err != nil {
			return false, false, fmt.Errorf("reading response from %s#%d: %w", b.Service, b.Slot, err)
		}
		status, err = parseStatus(c.rhead)
		if err != nil {
			return false, false, fmt.Errorf("%w from %s#%d: %w", errBadResponse, b.Service, b.Slot, err)
		}
		if status >= 200 || status == 101 {
			break
		}
		// An interim response (103 Early Hints, 100 Continue): pass it on
		// to a client that understands them, and read the final one.
		if req.minor == 1 {
			c.bw.Write(c.rhead)
		}
	}
	c.rfield, err = parseFields(c.rhead, firstLineEnd(c.rhead), c.rfield)
	if err != nil {
		return false, false, fmt.Errorf("%w from %s#%d: %w", errBadResponse, b.Service, b.Slot, err)
	}
	resp := c.parseResponseFields(status)
	if status == 101 {
		if req.upgrade == nil {
			return false, false, fmt.Errorf("%w from %s#%d: 101 without an upgrade request", errBadResponse, b.Service, b.Slot)
		}
		c.writeResponseHead(req, &resp, false)
		if err := c.bw.Flush(); err != nil {
			return false, true, fmt.Errorf("%w: %w", errClientGone, err)
		}
		c.tunnel(uc)
		return false, true, nil
	}
	framing := bodyUntilClose
	switch {
	case isHead(req.method) || status == 204 || status == 304:
		framing = bodyNone
	case resp.chunked:
		framing = bodyChunked
	case resp.contentLength >= 0:
		framing = bodyLength
	}
	keep = !req.close && !c.closing() && framing != bodyUntilClose &&
		!(framing == bodyChunked && req.minor == 0)
	c.writeDeadline(time.Now())
	c.writeResponseHead(req, &resp, keep)

	switch framing {
	case bodyLength:
		err = c.copyBody(uc.R, resp.contentLength)
	case bodyChunked:
		if req.minor == 1 {
			err = c.relayChunked(uc.R)
		} else {
			c.dec.reset(uc.R)
			err = c.copyBody(&c.dec, -1)
		}
	case bodyUntilClose:
		err = c.copyBody(uc.R, -1)
	}
	if err != nil {
		return false, true, err
	}
	// A client that pipelines gets its responses in one write.
	if c.br.Buffered() == 0 || !keep {
		if err := c.bw.Flush(); err != nil {
			return false, true, fmt.Errorf("%w: %w", errClientGone, err)
		}
	}
	reusable = !resp.close && framing != bodyUntilClose
	return keep, true, nil
}

// buildUpstreamHead writes into c.out the request head for the instance,
// followed by the body when it is kept.
func (c *conn) buildUpstreamHead(req *request, kept bool, addr string) {
	head := c.head
	out := c.out[:0]
	out = append(out, req.method...)
	out = append(out, ' ')
	out = append(out, req.target...)
	out = append(out, " HTTP/1.1\r\n"...)
	if req.host == nil { // HTTP/1.0 may omit it; HTTP/1.1 may not
		out = append(out, "Host: "...)
		out = append(out, addr...)
		out = append(out, "\r\n"...)
	}
	for _, f := range c.fields {
		name := f.name.of(head)
		if hopHeader(name) || connectionNames(req.connection, name) {
			continue
		}
		switch len(name) {
		case 6:
			if equalFold(name, "expect") {
				continue // answered here: see readBody
			}
		case 14:
			if equalFold(name, "content-length") {
				continue // written below, for the body as sent
			}
		case 15:
			if equalFold(name, "x-forwarded-for") {
				continue
			}
		case 16:
			if equalFold(name, "x-forwarded-host") {
				continue
			}
		case 17:
			if equalFold(name, "x-forwarded-proto") {
				continue
			}
		}
		out = append(out, head[f.name.start:f.value.end]...)
		out = append(out, "\r\n"...)
	}
	// X-Forwarded-*: what the client says is believed only from a trusted
	// proxy in front; otherwise it is replaced, so an instance can trust it.
	out = append(out, "X-Forwarded-For: "...)
	if c.trusted && len(req.xff) > 0 {
		out = append(out, req.xff...)
		out = append(out, ", "...)
	}
	out = append(out, c.clientIP...)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	if c.trusted && len(req.xfh) > 0 {
		out = append(out, req.xfh...)
	} else {
		out = append(out, req.host...)
	}
	out = append(out, "\r\nX-Forwarded-Proto: "...)
	if c.trusted && len(req.xfp) > 0 {
		out = append(out, req.xfp...)
	} else {
		out = append(out, "http"...)
	}
	out = append(out, "\r\n"...)
	if req.upgrade != nil {
		out = append(out, "Connection: Upgrade\r\nUpgrade: "...)
		out = append(out, req.upgrade...)
		out = append(out, "\r\n"...)
	}
	switch {
	case kept && (req.chunked || req.contentLength >= 0):
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(len(c.body)), 10)
		out = append(out, "\r\n"...)
	case !kept && req.chunked:
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	case !kept:
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, req.contentLength, 10)
		out = append(out, "\r\n"...)
	}
	out = append(out, "\r\n"...)
	if kept {
		out = append(out, c.body...)
	}
	c.out = out
}

// connectionNames reports whether the Connection header value conn lists
// name, making it hop-by-hop.
func connectionNames(conn, name []byte) bool {
	if len(conn) == 0 {
		return false
	}
	for len(conn) > 0 {
		i := indexByte(conn, ',')
		tok := conn
		if i >= 0 {
			tok, conn = conn[:i], conn[i+1:]
		} else {
			conn = nil
		}
		tok = trimOWS(tok)
		if len(tok) == len(name) && equalFoldBytes(tok, name) {
			return true
		}
	}
	return false
}

func equalFoldBytes(a, b []byte) bool {
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// streamBody sends the part of a request body that was not kept: the kept
// part first, then the rest as it arrives from the client.
func (c *conn) streamBody(req *request, uc *upstream.Conn) error {
	if !req.chunked {
		n := req.contentLength
		for n > 0 {
			if _, err := c.br.Peek(1); err != nil {
				return fmt.Errorf("%w: reading body: %w", errClientGone, err)
			}
			p, _ := c.br.Peek(int(min(int64(c.br.Buffered()), n)))
			if _, err := uc.Write(p); err != nil {
				return fmt.Errorf("sending body: %w", err)
			}
			c.br.Discard(len(p))
			n -= int64(len(p))
		}
		return nil
	}
	data := c.body
	for {
		if len(data) > 0 {
			out := c.out[:0]
			out = strconv.AppendInt(out, int64(len(data)), 16)
			out = append(out, "\r\n"...)
			out = append(out, data...)
			out = append(out, "\r\n"...)
			c.out = out
			if _, err := uc.Write(out); err != nil {
				return fmt.Errorf("sending body: %w", err)
			}
		}
		n, err := c.dec.Read(c.body[:cap(c.body)])
		data = c.body[:n]
		if err == io.EOF {
			if _, err := uc.Write(lastChunk); err != nil {
				return fmt.Errorf("sending body: %w", err)
			}
			return nil
		}
		if err != nil {
			return clientBodyError(err)
		}
	}
}

// tunnel joins the client and the instance after a 101, until either side
// closes. Bytes already buffered on either side go first.
func (c *conn) tunnel(uc *upstream.Conn) {
	c.nc.SetDeadline(time.Time{}) // the connection ends with the tunnel
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.br.WriteTo(uc.TCPConn)
		uc.CloseWrite()
	}()
	uc.R.WriteTo(c.nc)
	c.nc.Close()
	uc.TCPConn.Close()
	<-done
}

func isHead(m []byte) bool { return string(m) == "HEAD" }

var lastChunk = []byte("0\r\n\r\n")
