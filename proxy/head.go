package proxy

import (
	"bufio"
	"errors"
)

// field is one header line, as offsets into the head buffer it was read
// into (offsets stay valid when the buffer grows).
type field struct {
	name, value span
}

type span struct{ start, end int32 }

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

// Head-reading errors; statusFor maps them.
var (
	errHeadTooLarge = errors.New("request head too large")
	errBadHead      = errors.New("malformed head")
)

// readHead appends one message head (start line and header lines, through
// the blank line) from r to buf[:0], up to max bytes, and returns it.
func readHead(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	buf = buf[:0]
	for {
		line, err := r.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return buf, errHeadTooLarge
		}
		buf = append(buf, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return buf, err
		}
		// A blank line ends the head; a blank line before the start line
		// is tolerated (RFC 9112 §2.2).
		n := len(line)
		if n == 1 || (n == 2 && line[0] == '\r') {
			if len(buf) == n {
				buf = buf[:0]
				continue
			}
			return buf, nil
		}
	}
}

// parseFields splits the header lines of head (after the start line, which
// ends at offset start) into fields. It rejects obsolete line folding,
// whitespace before the colon and names that are not tokens: each is a way
// to make two parsers disagree about a request.
func parseFields(head []byte, start int, fields []field) ([]field, error) {
	fields = fields[:0]
	i := start
	for i < len(head) {
		end := i
		for end < len(head) && head[end] != '\n' {
			end++
		}
		lineEnd := end
		if lineEnd > i && head[lineEnd-1] == '\r' {
			lineEnd--
		}
		if lineEnd == i { // the blank line
			return fields, nil
		}
		if head[i] == ' ' || head[i] == '\t' {
			return fields, errBadHead
		}
		colon := i
		for colon < lineEnd && head[colon] != ':' {
			if !isTokenChar(head[colon]) {
				return fields, errBadHead
			}
			colon++
		}
		if colon == lineEnd || colon == i {
			return fields, errBadHead
		}
		vs, ve := colon+1, lineEnd
		for vs < ve && (head[vs] == ' ' || head[vs] == '\t') {
			vs++
		}
		for ve > vs && (head[ve-1] == ' ' || head[ve-1] == '\t') {
			ve--
		}
		fields = append(fields, field{span{int32(i), int32(colon)}, span{int32(vs), int32(ve)}})
		i = end + 1
	}
	return fields, errBadHead
}

// lineEnd returns the offset just past the first line of b.
func firstLineEnd(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i + 1
		}
	}
	return len(b)
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isTokenChar(c byte) bool { return tokenTable[c] }

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token tok
// (lower case), ignoring case and spaces.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		if equalFold(trimOWS(v[:i]), tok) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseContentLength parses a Content-Length value: digits only.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hopHeader reports whether a header is hop-by-hop (RFC 9110 §7.6.1), and
// so is not forwarded as received. Transfer-Encoding, Connection and Upgrade
// are handled by the framing code, which writes its own.
func hopHeader(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "upgrade") || equalFold(name, "trailer")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	case 18:
		return equalFold(name, "proxy-authenticate")
	case 19:
		return equalFold(name, "proxy-authorization")
	}
	return false
}
