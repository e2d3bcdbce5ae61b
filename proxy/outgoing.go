package proxy

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"smoothserve/upstream"
)

// buildUpstreamHead writes into c.out the request head for the instance,
// followed by the body when it is kept.
func (c *conn) buildUpstreamHead(req *request, kept bool, addr string) {
	head := c.head
	out := c.out[:0]
	out = append(out, req.method...)
	out = append(out, ' ')
	if len(req.target) == 0 || (req.target[0] != '/' && req.target[0] != '*') {
		out = append(out, '/') // "http://h" or "http://h?q" in absolute-form
	}
	out = append(out, req.target...)
	out = append(out, " HTTP/1.1\r\n"...)
	if req.absolute || req.host == nil { // HTTP/1.0 may omit Host
		out = append(out, "Host: "...)
		if req.host == nil {
			out = append(out, addr...)
		} else {
			out = append(out, req.host...)
		}
		out = append(out, "\r\n"...)
	}
	for i := range c.fields {
		f := &c.fields[i]
		switch f.id {
		case hdrHost:
			if req.absolute {
				continue // the target's authority is the host
			}
		case hdrExpect: // answered here: see readBody
			continue
		case hdrXForwardedFor, hdrXForwardedHost, hdrXForwardedProto, hdrXRequestID:
			continue // written below
		case hdrForwardedAlias:
			continue // X_Forwarded_For would pass for the proxy's own (headers.go)
		}
		if f.id.hopByHop() || (req.conn.other && removedBy(head, c.fields, f)) {
			continue
		}
		out = append(out, f.name.of(head)...)
		out = append(out, ": "...)
		out = append(out, f.value.of(head)...)
		out = append(out, "\r\n"...)
	}
	out = c.appendForwarded(out, req)
	if req.websocket {
		out = append(out, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
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

// appendForwarded appends X-Forwarded-* and X-Request-Id. What the client
// says is believed only from a trusted proxy in front; otherwise it is
// replaced, so an instance can trust it.
func (c *conn) appendForwarded(out []byte, req *request) []byte {
	out = append(out, "X-Forwarded-For: "...)
	if c.trusted && len(req.xff) > 0 {
		out = append(out, req.xff...)
		out = append(out, ", "...)
	}
	out = append(out, c.clientIP...)
	host := req.host
	if c.trusted && len(req.xfh) > 0 {
		host = req.xfh
	}
	if len(host) > 0 { // none for an HTTP/1.0 request without Host: an empty one says nothing
		out = append(out, "\r\nX-Forwarded-Host: "...)
		out = append(out, host...)
	}
	out = append(out, "\r\nX-Forwarded-Proto: "...)
	switch {
	case c.trusted && len(req.xfp) > 0:
		out = append(out, req.xfp...)
	case c.secure:
		out = append(out, "https"...)
	default:
		out = append(out, "http"...)
	}
	out = append(out, "\r\nX-Request-Id: "...)
	out = append(out, c.rid...)
	return append(out, "\r\n"...)
}

// streamBody sends the part of a request body that was not kept: the kept
// part first, then the rest as it arrives from the client, within the
// service's max_body_size.
func (c *conn) streamBody(req *request, uc *upstream.Conn) error {
	if !req.chunked {
		n := req.contentLength
		for n > 0 {
			c.bodyReadDeadline(time.Now())
			if _, err := c.br.Peek(1); err != nil {
				return clientBodyError(err)
			}
			p, _ := c.br.Peek(int(min(int64(c.br.Buffered()), n)))
			if _, err := uc.Write(p); err != nil {
				return fmt.Errorf("%w: %w", errSendingBody, err)
			}
			c.br.Discard(len(p))
			n -= int64(len(p))
		}
		return nil
	}
	data := c.body
	total := int64(len(data))
	for {
		if len(data) > 0 {
			out := c.out[:0]
			out = strconv.AppendInt(out, int64(len(data)), 16)
			out = append(out, "\r\n"...)
			out = append(out, data...)
			out = append(out, "\r\n"...)
			c.out = out
			if _, err := uc.Write(out); err != nil {
				return fmt.Errorf("%w: %w", errSendingBody, err)
			}
		}
		c.bodyReadDeadline(time.Now())
		n, err := c.dec.Read(c.body[:cap(c.body)])
		data = c.body[:n]
		total += int64(n)
		if limit := c.maxBody; limit > 0 && total > limit {
			return errBodyTooLarge
		}
		if err == io.EOF {
			if _, err := uc.Write(lastChunk); err != nil {
				return fmt.Errorf("%w: %w", errSendingBody, err)
			}
			return nil
		}
		if err != nil {
			return clientBodyError(err)
		}
	}
}

var lastChunk = []byte("0\r\n\r\n")
