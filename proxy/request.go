package proxy

import (
	"errors"
)

// request is a parsed request head. Its slices point into conn.head and
// are valid until the next request is read.
type request struct {
	method []byte
	target []byte
	minor  int // HTTP/1.minor

	host          []byte
	contentLength int64 // -1: none
	chunked       bool
	close         bool // the client will not send another request
	keepAlive10   bool // HTTP/1.0 client asked for keep-alive
	expect100     bool
	upgrade       []byte // the Upgrade value, when Connection: upgrade asks for one
	connection    []byte // the Connection value: its tokens name more hop-by-hop headers

	xff, xfh, xfp []byte // X-Forwarded-* as the client sent them
}

var (
	errBadRequest     = errors.New("bad request")
	errVersion        = errors.New("unsupported HTTP version")
	errTransferCoding = errors.New("unsupported transfer coding")
)

// parseRequest parses head into req and c.fields.
func (c *conn) parseRequest(req *request) error {
	head := c.head
	*req = request{contentLength: -1}
	le := firstLineEnd(head)
	line := head[:le]
	line = trimCRLF(line)
	sp1 := indexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequest
	}
	rest := line[sp1+1:]
	sp2 := lastIndexByte(rest, ' ')
	if sp2 <= 0 {
		return errBadRequest
	}
	req.method = line[:sp1]
	req.target = rest[:sp2]
	proto := rest[sp2+1:]
	for _, ch := range req.method {
		if !isTokenChar(ch) {
			return errBadRequest
		}
	}
	for _, ch := range req.target {
		if ch <= ' ' || ch == 0x7f {
			return errBadRequest
		}
	}
	switch string(proto) {
	case "HTTP/1.1":
		req.minor = 1
	case "HTTP/1.0":
		req.minor = 0
	default:
		if len(proto) > 5 && string(proto[:5]) == "HTTP/" {
			return errVersion
		}
		return errBadRequest
	}
	var err error
	c.fields, err = parseFields(head, le, c.fields)
	if err != nil {
		return err
	}
	hosts := 0
	for _, f := range c.fields {
		name, value := f.name.of(head), f.value.of(head)
		switch len(name) {
		case 4:
			if equalFold(name, "host") {
				req.host = value
				hosts++
			}
		case 6:
			if equalFold(name, "expect") && equalFold(value, "100-continue") {
				req.expect100 = true
			}
		case 7:
			if equalFold(name, "upgrade") {
				req.upgrade = value
			}
		case 10:
			if equalFold(name, "connection") {
				req.connection = value
			}
		case 14:
			if equalFold(name, "content-length") {
				n, ok := parseContentLength(value)
				if !ok || (req.contentLength >= 0 && req.contentLength != n) {
					return errBadRequest
				}
				req.contentLength = n
			}
		case 15:
			if equalFold(name, "x-forwarded-for") {
				req.xff = value
			}
		case 16:
			if equalFold(name, "x-forwarded-host") {
				req.xfh = value
			}
		case 17:
			if equalFold(name, "transfer-encoding") {
				if !equalFold(value, "chunked") || req.chunked {
					return errTransferCoding
				}
				req.chunked = true
			} else if equalFold(name, "x-forwarded-proto") {
				req.xfp = value
			}
		}
	}
	// A request with both framings is how requests are smuggled past a
	// proxy that reads one and an instance that reads the other.
	if req.chunked && req.contentLength >= 0 {
		return errBadRequest
	}
	if hosts > 1 || (hosts == 0 && req.minor == 1) {
		return errBadRequest
	}
	if len(req.target) > 7 && (equalFold(req.target[:7], "http://") || (len(req.target) > 8 && equalFold(req.target[:8], "https://"))) {
		// absolute-form: the authority in the target is the host.
		t := req.target[7:]
		if t[0] == '/' {
			t = t[1:]
		}
		i := indexByte(t, '/')
		if i < 0 {
			req.host, req.target = t, []byte("/")
		} else {
			req.host, req.target = t[:i], t[i:]
		}
	}
	if req.connection != nil {
		req.close = hasToken(req.connection, "close")
		if req.minor == 0 {
			req.keepAlive10 = hasToken(req.connection, "keep-alive")
		}
		if req.upgrade != nil && !hasToken(req.connection, "upgrade") {
			req.upgrade = nil
		}
	} else {
		req.upgrade = nil
	}
	if req.minor == 0 && !req.keepAlive10 {
		req.close = true
	}
	return nil
}

// idempotent reports whether the method may be sent twice with the same
// effect (RFC 9110 §9.2.2).
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}
