package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// response is what the relay needs to know of a response head in c.rhead.
type response struct {
	status        int
	reason        span  // the reason phrase, or empty
	contentLength int64 // -1: none
	chunked       bool
	close         bool       // the instance will close the connection after it
	conn          connTokens // what its Connection fields say
	websocket     bool       // Upgrade: websocket
	dated         bool       // it has a Date field
}

// maxResponseHead bounds an instance's response head; maxResponseFields
// its header fields.
const (
	maxResponseHead   = 64 << 10
	maxResponseFields = 500
)

// badResponse says what is wrong with an instance's answer; the client
// gets 502 and the log gets this.
func badResponse(what string) error { return fmt.Errorf("%w: %s", errBadResponse, what) }

// parseResponse parses the response head in c.rhead into resp and c.rfield.
func (c *conn) parseResponse(resp *response) error {
	var err error
	c.rfield, err = parseResponse(c.rhead, c.rfield, resp)
	return err
}

// parseResponse parses a response head into resp and fields[:0], which it
// returns. It accepts only what can be framed one way: a valid status line,
// valid fields, at most one Content-Length of digits, Transfer-Encoding
// only as "chunked" and never with Content-Length. Both protocols' paths
// read an instance's answers with it (HTTP/1.1's conn, HTTP/2's bridge).
func parseResponse(head []byte, fields []field, resp *response) ([]field, error) {
	*resp = response{contentLength: -1}
	le := firstLineEnd(head)
	http10, err := parseStatusLine(trimCRLF(head[:le]), resp)
	if err != nil {
		return fields[:0], err
	}
	fields, err = parseFields(head, le, fields, maxResponseFields)
	if err != nil {
		return fields, badResponse("header fields: " + err.Error())
	}
	lengths, codings := 0, 0
	for i := range fields {
		f := &fields[i]
		value := f.value.of(head)
		switch f.id {
		case hdrContentLength:
			lengths++
			n, ok := parseContentLength(value)
			if !ok {
				return fields, badResponse("invalid Content-Length " + strconv.Quote(string(value)))
			}
			resp.contentLength = n
		case hdrTransferEncoding:
			codings++
			if !equalFold(value, "chunked") {
				return fields, badResponse("unsupported Transfer-Encoding " + strconv.Quote(string(value)))
			}
			resp.chunked = true
		case hdrConnection:
			resp.conn.read(value)
		case hdrUpgrade:
			resp.websocket = resp.websocket || hasToken(value, "websocket")
		case hdrDate:
			resp.dated = true
		}
	}
	switch {
	case lengths > 1:
		return fields, badResponse("more than one Content-Length")
	case codings > 1:
		return fields, badResponse("more than one Transfer-Encoding")
	case codings > 0 && lengths > 0:
		return fields, badResponse("both Content-Length and Transfer-Encoding")
	case codings > 0 && http10:
		return fields, badResponse("Transfer-Encoding in an HTTP/1.0 response")
	}
	resp.close = resp.conn.close || (http10 && !resp.conn.keepAlive)
	return fields, nil
}

// parseStatusLine reads "HTTP/1.x NNN reason" and reports whether it is
// HTTP/1.0.
func parseStatusLine(line []byte, resp *response) (http10 bool, err error) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return false, badResponse("bad status line " + quoteStart(line))
	}
	code := 0
	for _, ch := range line[9:12] {
		if !isDigit(ch) {
			return false, badResponse("bad status line " + quoteStart(line))
		}
		code = code*10 + int(ch-'0')
	}
	if code < 100 || code > 599 || (len(line) > 12 && line[12] != ' ') {
		return false, badResponse("bad status line " + quoteStart(line))
	}
	for _, ch := range line[12:] {
		if !isFieldValueChar(ch) {
			return false, badResponse("bad status line " + quoteStart(line))
		}
	}
	resp.status = code
	resp.reason = span{min(13, int32(len(line))), int32(len(line))}
	return line[7] == '0', nil
}

// quoteStart quotes the start of b, for an error message.
func quoteStart(b []byte) string { return strconv.Quote(clip(b)) }

// clip returns the start of b, for a log line (which quotes it).
func clip(b []byte) string { return string(b[:min(len(b), 100)]) }

// writeResponseHead writes the instance's response head to the client,
// canonically: the status line and fields with CRLF, without hop-by-hop
// fields, with the framing of this hop (length, chunked or none) and its
// Connection.
func (c *conn) writeResponseHead(req *request, resp *response, framing int, keep bool, enc encoding) {
	c.rec.status = resp.status
	head := c.rhead
	c.writeStatusLine(resp)
	relayChunks := framing == bodyChunked && req.minor == 1
	if enc != encNone {
		framing, relayChunks = bodyChunked, false // the proxy's own chunks, without the instance's trailer
		c.bw.WriteString("Transfer-Encoding: chunked\r\nContent-Encoding: " + enc.String() + "\r\nVary: Accept-Encoding\r\n")
	}
	for i := range c.rfield {
		f := &c.rfield[i]
		if f.id.hopByHop() && !(relayChunks && f.id == hdrTrailer) {
			continue
		}
		if resp.conn.other && removedBy(head, c.rfield, f) {
			continue
		}
		if enc != encNone && f.id == hdrOther && equalFold(f.name.of(head), "etag") {
			c.bw.WriteString("ETag: ")
			c.bw.Write(weakETag(f.value.of(head)))
			c.bw.WriteString("\r\n")
			continue
		}
		c.writeField(head, f)
	}
	if !resp.dated {
		// A proxy adds the Date an instance left out (RFC 9110 6.6.1), as
		// nginx and net/http (so HTTP/2 here) do.
		c.bw.Write(appendDate(c.bw.AvailableBuffer(), time.Now()))
	}
	switch {
	case resp.status == 101:
		c.bw.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		return
	case resp.passesLength(framing):
		b := append(c.bw.AvailableBuffer(), "Content-Length: "...)
		b = strconv.AppendInt(b, resp.contentLength, 10)
		c.bw.Write(append(b, "\r\n"...))
	case relayChunks:
		c.bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case !keep:
		c.bw.WriteString("Connection: close\r\n")
	case req.minor == 0:
		c.bw.WriteString("Connection: keep-alive\r\n")
	}
	c.bw.WriteString("\r\n")
}

// passesLength reports whether the client gets resp's Content-Length, its
// body framed so: when the length frames the body, and for a HEAD's or a
// 304's answer, whose length describes the representation (no body
// follows). Both protocols' paths pass it by this rule.
func (resp *response) passesLength(framing int) bool {
	return framing == bodyLength || (framing == bodyNone && resp.contentLength >= 0 && resp.status != 204 && resp.status >= 200)
}

// writeStatusLine writes "HTTP/1.1 NNN reason\r\n", with the standard
// reason when the instance gave none.
func (c *conn) writeStatusLine(resp *response) {
	b := append(c.bw.AvailableBuffer(), "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(resp.status), 10)
	b = append(b, ' ')
	if reason := resp.reason.of(c.rhead); len(reason) > 0 {
		b = append(b, reason...)
	} else if text := http.StatusText(resp.status); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "Status"...)
	}
	c.bw.Write(append(b, "\r\n"...))
}

// writeField writes one field as "Name: value\r\n".
func (c *conn) writeField(head []byte, f *field) {
	c.bw.Write(f.name.of(head))
	c.bw.WriteString(": ")
	c.bw.Write(f.value.of(head))
	c.bw.WriteString("\r\n")
}
