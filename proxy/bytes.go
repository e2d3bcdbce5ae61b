package proxy

import "bytes"

// The byte helpers of the parsers, in one place. Header names and tokens
// are compared without allocating: they stay slices of the buffers they were
// read into.

// firstLineEnd returns the offset just past the first line of b.
func firstLineEnd(b []byte) int {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return i + 1
	}
	return len(b)
}

// trimCRLF removes one line ending, "\r\n" or "\n".
func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
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

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// equalFoldDash is equalFold with each '_' of b read as '-'.
func equalFoldDash(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := lower(b[i])
		if c == '_' {
			c = '-'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes reports whether a and b are equal, ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// nextToken splits the comma-separated list v at its first element, and
// returns that element without the spaces around it, and the rest.
func nextToken(v []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		return trimOWS(v[:i]), v[i+1:]
	}
	return trimOWS(v), nil
}

// hasToken reports whether the comma-separated list v holds token tok
// (lower case), ignoring case and spaces.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		if t, v = nextToken(v); equalFold(t, tok) {
			return true
		}
	}
	return false
}

// alnumPlus returns a table of the ASCII letters and digits and extra.
func alnumPlus(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

// tokenTable holds the bytes of a token (RFC 9110 §5.6.2).
var tokenTable = alnumPlus("!#$%&'*+-.^_`|~")

func isTokenChar(c byte) bool { return tokenTable[c] }

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenTable[c] {
			return false
		}
	}
	return true
}

// isFieldValueChar reports whether c may appear in a field value as sent on
// the wire (RFC 9110 §5.5): visible ASCII, space, tab and obs-text. A bare
// CR, LF, NUL, any other control or DEL is how two parsers are made to see
// different headers, and is refused.
func isFieldValueChar(c byte) bool { return c >= 0x20 && c != 0x7f || c == '\t' }

// parseContentLength parses a Content-Length value: digits only, no sign,
// no list.
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
