package proxy

import (
	"bytes"
	"errors"
)

// request is a parsed request head. Its slices point into conn.head and
// are valid until the next request is read.
type request struct {
	method []byte
	target []byte // origin-form or "*"; from an absolute-form target, what follows the authority
	minor  int    // HTTP/1.minor

	host          []byte // the Host field, or the authority of an absolute-form target
	absolute      bool   // host came from the target: the client's Host field is not forwarded
	contentLength int64  // -1: none
	chunked       bool
	close         bool // the client will not send another request
	expect100     bool
	websocket     bool       // a WebSocket upgrade was asked for: the only upgrade passed on
	conn          connTokens // what its Connection fields say

	xff, xfh, xfp []byte // X-Forwarded-* as the client sent them
	id            []byte // X-Request-Id as the client sent it
}

var (
	errBadRequest     = errors.New("bad request")
	errBadTarget      = errors.New("bad request target")
	errBadHost        = errors.New("bad host")
	errConnect        = errors.New("CONNECT refused: not a forward proxy")
	errVersion        = errors.New("unsupported HTTP version")
	errTransferCoding = errors.New("unsupported transfer coding")
)

// parseRequest parses c.head into req and c.fields.
func (c *conn) parseRequest(req *request) error {
	head := c.head
	*req = request{contentLength: -1}
	le := firstLineEnd(head)
	if err := parseRequestLine(trimCRLF(head[:le]), req); err != nil {
		return err
	}
	var err error
	c.fields, err = parseFields(head, le, c.fields, c.srv.opts.MaxHeaderFields)
	if err != nil {
		return err
	}
	if err := req.readFields(head, c.fields); err != nil {
		return err
	}
	// Only WebSocket tunnels: an h2c upgrade would carry later requests
	// past the proxy, and other protocols have no use behind one.
	req.websocket = req.websocket && req.conn.upgrade && string(req.method) == "GET" && req.minor == 1
	req.close = req.conn.close || (req.minor == 0 && !req.conn.keepAlive)
	return nil
}

// parseRequestLine reads "METHOD target HTTP/1.x". The target must be in
// origin-form, absolute-form (http or https, with an authority and no
// userinfo), or "*" for OPTIONS (RFC 9112 §3.2); it may hold no byte
// outside visible ASCII, and no fragment.
func parseRequestLine(line []byte, req *request) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequest
	}
	rest := line[sp1+1:]
	sp2 := bytes.LastIndexByte(rest, ' ')
	if sp2 <= 0 {
		return errBadRequest
	}
	req.method, req.target = line[:sp1], rest[:sp2]
	proto := rest[sp2+1:]
	if !isToken(req.method) {
		return errBadRequest
	}
	switch string(proto) {
	case "HTTP/1.1":
		req.minor = 1
	case "HTTP/1.0":
		req.minor = 0
	default:
		if len(proto) == 8 && string(proto[:5]) == "HTTP/" && isDigit(proto[5]) && proto[6] == '.' && isDigit(proto[7]) {
			return errVersion
		}
		return errBadRequest
	}
	for _, ch := range req.target {
		if ch <= ' ' || ch >= 0x7f || ch == '#' { // a fragment is the client's own
			return errBadTarget
		}
	}
	if string(req.method) == "CONNECT" {
		return errConnect
	}
	t := req.target
	switch {
	case len(t) > 0 && t[0] == '/':
		return nil
	case string(t) == "*":
		if string(req.method) != "OPTIONS" {
			return errBadTarget
		}
		return nil
	}
	return parseAbsoluteTarget(req)
}

// parseAbsoluteTarget splits "http://authority/path?query": the authority
// becomes the request's host, the rest its target.
func parseAbsoluteTarget(req *request) error {
	t := req.target
	switch {
	case len(t) > 7 && equalFold(t[:7], "http://"):
		t = t[7:]
	case len(t) > 8 && equalFold(t[:8], "https://"):
		t = t[8:]
	default:
		return errBadTarget
	}
	end := 0
	for end < len(t) && t[end] != '/' && t[end] != '?' && t[end] != '#' {
		end++
	}
	if !validHost(t[:end]) { // empty, userinfo ("u@h"), or not a host
		return errBadTarget
	}
	req.host, req.target, req.absolute = t[:end], t[end:], true
	return nil
}

// readFields reads what the proxy acts on from the header fields.
func (req *request) readFields(head []byte, fields []field) error {
	hosts, lengths, codings := 0, 0, 0
	for _, f := range fields {
		value := f.value.of(head)
		switch f.id {
		case hdrHost:
			hosts++
			if !validHost(value) {
				return errBadHost
			}
			if !req.absolute {
				req.host = value
			}
		case hdrExpect:
			req.expect100 = req.expect100 || equalFold(value, "100-continue")
		case hdrUpgrade:
			req.websocket = req.websocket || hasToken(value, "websocket")
		case hdrConnection:
			req.conn.read(value)
		case hdrContentLength:
			lengths++
			n, ok := parseContentLength(value)
			if !ok {
				return errBadRequest
			}
			req.contentLength = n
		case hdrTransferEncoding:
			codings++
			if !equalFold(value, "chunked") {
				return errTransferCoding
			}
			req.chunked = true
		case hdrXForwardedFor:
			req.xff = value
		case hdrXForwardedHost:
			req.xfh = value
		case hdrXForwardedProto:
			req.xfp = value
		case hdrXRequestID:
			req.id = value
		}
	}
	// Two Hosts, two lengths, two codings, or a length and a coding: each
	// is how a request is smuggled past a proxy that reads one and an
	// instance that reads the other.
	if hosts > 1 || (hosts == 0 && req.minor == 1) || lengths > 1 || codings > 1 ||
		(req.chunked && (lengths > 0 || req.minor == 0)) {
		return errBadRequest
	}
	return nil
}

// hostTable holds the bytes of a reg-name or IPv4 address (RFC 3986 §3.2.2).
var hostTable = alnumPlus("-._~!$&'()*+,;=%")

// validHost reports whether h is host[:port]: a name, an IPv4 address or
// an IPv6 literal in brackets, and digits for the port.
func validHost(h []byte) bool {
	if len(h) == 0 || len(h) > maxHostLen {
		return false
	}
	i := 0
	if h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 2 {
			return false
		}
		for _, c := range h[1:end] {
			if !isHex(c) && c != ':' && c != '.' {
				return false
			}
		}
		i = end + 1
	} else {
		for i < len(h) && h[i] != ':' {
			if !hostTable[h[i]] {
				return false
			}
			i++
		}
		if i == 0 {
			return false
		}
	}
	if i == len(h) {
		return true
	}
	if h[i] != ':' || len(h)-i-1 > 5 {
		return false
	}
	for _, c := range h[i+1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= lower(c) && lower(c) <= 'f' }

// idempotent reports whether the method may be sent twice with the same
// effect (RFC 9110 §9.2.2).
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}
