package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// response is what the relay needs to know of a response head in c.rhead.
type response struct {
	status        int
	contentLength int64 // -1: none
	chunked       bool
	close         bool   // the instance will close the connection after it
	connection    []byte // its Connection value: more hop-by-hop names
	upgrade       []byte
}

var errStatusLine = errors.New("bad status line")

// parseStatus reads the status code of "HTTP/1.x NNN reason".
func parseStatus(head []byte) (int, error) {
	if len(head) < 12 || string(head[:7]) != "HTTP/1." || head[8] != ' ' {
		return 0, errStatusLine
	}
	code := 0
	for _, ch := range head[9:12] {
		if ch < '0' || ch > '9' {
			return 0, errStatusLine
		}
		code = code*10 + int(ch-'0')
	}
	if code < 100 {
		return 0, errStatusLine
	}
	return code, nil
}

func (c *conn) parseResponseFields(status int) response {
	resp := response{status: status, contentLength: -1}
	head := c.rhead
	http10 := head[7] == '0'
	keepAlive := false
	for _, f := range c.rfield {
		name, value := f.name.of(head), f.value.of(head)
		switch len(name) {
		case 7:
			if equalFold(name, "upgrade") {
				resp.upgrade = value
			}
		case 10:
			if equalFold(name, "connection") {
				resp.connection = value
				resp.close = hasToken(value, "close")
				keepAlive = hasToken(value, "keep-alive")
			}
		case 14:
			if equalFold(name, "content-length") {
				if n, ok := parseContentLength(value); ok {
					resp.contentLength = n
				}
			}
		case 17:
			if equalFold(name, "transfer-encoding") && hasToken(value, "chunked") {
				resp.chunked = true
			}
		}
	}
	if http10 && !keepAlive {
		resp.close = true
	}
	return resp
}

// writeResponseHead writes the instance's response head to the client
// without its hop-by-hop headers, and with the framing and connection
// headers of this hop.
func (c *conn) writeResponseHead(req *request, resp *response, keep bool) {
	head := c.rhead
	le := firstLineEnd(head)
	c.bw.WriteString("HTTP/1.1")
	c.bw.Write(head[8:le]) // " NNN reason\r\n"
	relayChunks := resp.chunked && req.minor == 1
	for _, f := range c.rfield {
		name := f.name.of(head)
		if hopHeader(name) {
			// A relayed chunked body keeps its framing, and any trailer
			// it announces.
			if !(relayChunks && (equalFold(name, "transfer-encoding") || equalFold(name, "trailer"))) &&
				!(resp.status == 101 && equalFold(name, "upgrade")) {
				continue
			}
		} else if connectionNames(resp.connection, name) {
			continue
		} else if resp.chunked && len(name) == 14 && equalFold(name, "content-length") {
			continue // chunked wins; both would let two readers disagree
		}
		c.bw.Write(head[f.name.start:f.value.end])
		c.bw.WriteString("\r\n")
	}
	switch {
	case resp.status == 101:
		c.bw.WriteString("Connection: Upgrade\r\n")
	case !keep:
		c.bw.WriteString("Connection: close\r\n")
	case req.minor == 0:
		c.bw.WriteString("Connection: keep-alive\r\n")
	}
	c.bw.WriteString("\r\n")
}

// copyBody copies n bytes (n < 0: until EOF) from src to the client,
// flushing whenever src has nothing more buffered, so that a streamed
// response is passed on as it comes, and a small one in one write.
func (c *conn) copyBody(src io.Reader, n int64) error {
	br, _ := src.(*bufio.Reader)
	for n != 0 {
		if br != nil && br.Buffered() == 0 && c.bw.Buffered() > 0 {
			if err := c.bw.Flush(); err != nil {
				return fmt.Errorf("%w: %w", errClientGone, err)
			}
		}
		buf := c.bw.AvailableBuffer()
		if cap(buf) == 0 {
			if err := c.bw.Flush(); err != nil {
				return fmt.Errorf("%w: %w", errClientGone, err)
			}
			continue
		}
		buf = buf[:cap(buf)]
		if n > 0 && int64(len(buf)) > n {
			buf = buf[:n]
		}
		k, err := src.Read(buf)
		c.bw.Write(buf[:k])
		if n > 0 {
			n -= int64(k)
		}
		if err == io.EOF && n < 0 {
			return nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading response body: %w", err)
		}
	}
	return nil
}

// relayChunked passes a chunked body on as it is, chunk by chunk,
// trailers included.
func (c *conn) relayChunked(src *bufio.Reader) error {
	for {
		line, err := readLine(src)
		if err != nil {
			return fmt.Errorf("reading response body: %w", err)
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return fmt.Errorf("reading response body: %w", err)
		}
		c.bw.Write(line)
		if size == 0 {
			for {
				line, err := readLine(src)
				if err != nil {
					return fmt.Errorf("reading response trailers: %w", err)
				}
				c.bw.Write(line)
				if len(trimCRLF(line)) == 0 {
					return nil
				}
			}
		}
		if err := c.copyBody(src, size); err != nil {
			return err
		}
		if err := expectCRLF(src); err != nil {
			return fmt.Errorf("reading response body: %w", err)
		}
		c.bw.WriteString("\r\n")
	}
}
