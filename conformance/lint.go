package conformance

import (
	"bytes"
	"fmt"
	"strings"
)

// The strict reading of a message: what RFC 9110 and 9112 allow a sender
// to send. A problem found is a way for a second parser to read the
// message differently.

// hfield is a header field as a strict parser reads it.
type hfield struct{ name, value string }

// splitLines splits a head (ending with its empty line) into lines without
// their line ends, noting line ends that are not CRLF.
func splitLines(h []byte) (lines []string, issues []string) {
	var bareLF, bareCR bool
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		if i < 0 {
			i = len(h)
		}
		line := h[:i]
		h = h[min(i+1, len(h)):]
		if l, ok := bytes.CutSuffix(line, []byte("\r")); ok {
			line = l
		} else {
			bareLF = true
		}
		bareCR = bareCR || bytes.IndexByte(line, '\r') >= 0
		if len(line) == 0 {
			break
		}
		lines = append(lines, string(line))
	}
	if bareLF {
		issues = append(issues, "bare LF line end")
	}
	if bareCR {
		issues = append(issues, "bare CR")
	}
	return lines, issues
}

// readFields reads field lines strictly.
func readFields(lines []string) (fields []hfield, issues []string) {
	for _, line := range lines {
		if line[0] == ' ' || line[0] == '\t' {
			issues = append(issues, "obs-fold")
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			issues = append(issues, fmt.Sprintf("field line without colon %.30q", line))
			continue
		case name == "":
			issues = append(issues, "empty field name")
		case !isToken(name):
			issues = append(issues, fmt.Sprintf("field name %.30q is not a token", name))
		}
		value = strings.Trim(value, " \t")
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				issues = append(issues, fmt.Sprintf("byte 0x%02x in %.30s", c, name))
				break
			}
		}
		fields = append(fields, hfield{name, value})
	}
	return fields, issues
}

// values returns the values of the fields named name.
func values(fields []hfield, name string) []string {
	var vs []string
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// lintFraming checks Content-Length and Transfer-Encoding: at most one of
// them, one field, a number or exactly "chunked". It reports whether the
// body is chunked.
func lintFraming(fields []hfield, http10 bool) (chunked bool, issues []string) {
	lengths, codings := values(fields, "Content-Length"), values(fields, "Transfer-Encoding")
	switch {
	case len(lengths) > 1:
		issues = append(issues, fmt.Sprintf("%d Content-Length fields", len(lengths)))
	case len(lengths) == 1 && !isDigits(lengths[0]):
		issues = append(issues, fmt.Sprintf("Content-Length %q", lengths[0]))
	}
	switch {
	case len(codings) > 1:
		issues = append(issues, fmt.Sprintf("%d Transfer-Encoding fields", len(codings)))
	case len(codings) == 1 && !strings.EqualFold(codings[0], "chunked"):
		issues = append(issues, fmt.Sprintf("Transfer-Encoding %q", codings[0]))
	}
	if len(codings) > 0 && len(lengths) > 0 {
		issues = append(issues, "both Content-Length and Transfer-Encoding")
	}
	if len(codings) > 0 && http10 {
		issues = append(issues, "Transfer-Encoding in HTTP/1.0")
	}
	return len(codings) == 1 && strings.EqualFold(codings[0], "chunked"), issues
}

// lintChunked checks a chunked body: hex sizes, extensions without
// control bytes, CRLF after every line and chunk, valid trailer fields.
func lintChunked(b []byte) []string {
	for {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return []string{"chunk-size line without CRLF"}
		}
		line := string(b[:i])
		b = b[i+2:]
		size, ext, _ := strings.Cut(line, ";")
		size = strings.TrimRight(size, " \t")
		n, ok := parseHex(size)
		if !ok || strings.ContainsAny(ext, "\r\n\x00") || hasCTL(ext) || (!strings.Contains(line, ";") && size != line) {
			return []string{fmt.Sprintf("chunk-size line %.30q", line)}
		}
		if n == 0 {
			return lintTrailer(b)
		}
		if int64(len(b)) < n+2 || string(b[n:n+2]) != "\r\n" {
			return []string{"chunk data not followed by CRLF"}
		}
		b = b[n+2:]
	}
}

// lintTrailer checks the trailer section: field lines, each ended by
// CRLF, then CRLF.
func lintTrailer(b []byte) []string {
	var issues []string
	for {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return append(issues, "trailer section not ended by CRLF")
		}
		line := string(b[:i])
		b = b[i+2:]
		if line == "" {
			return issues
		}
		if strings.ContainsAny(line, "\r\n") {
			issues = append(issues, "bare CR or LF in the trailer section")
		}
		_, more := readFields([]string{line})
		issues = append(issues, more...)
	}
}

func parseHex(s string) (int64, bool) {
	if s == "" || len(s) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c|0x20 && c|0x20 <= 'f':
			n = n<<4 | int64(c|0x20-'a'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validAuthority reports whether s is host[:port] (RFC 3986 §3.2.2): an
// IPv6 literal in brackets or a reg-name/IPv4 of unreserved, sub-delims
// and percent-encoding; a port of digits, possibly empty. "" is valid: a
// request without an authority sends an empty Host.
func validAuthority(s string) bool {
	hostPart, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		for _, c := range []byte(s[1:end]) {
			if !(c == ':' || c == '.' || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f') {
				return false
			}
		}
		hostPart, port = "", s[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
		port = strings.TrimPrefix(port, ":")
	} else if i := strings.IndexByte(s, ':'); i >= 0 {
		hostPart, port = s[:i], s[i+1:]
	}
	for _, c := range []byte(hostPart) {
		if !('0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z' || strings.IndexByte("-._~!$&'()*+,;=%", c) >= 0) {
			return false
		}
	}
	return port == "" || isDigits(port)
}
