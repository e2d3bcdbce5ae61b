package proxy

import (
	"bufio"
	"bytes"
	"errors"
)

// field is one header line, as offsets into the head buffer it was read
// into (offsets stay valid when the buffer grows), with the id of its name.
type field struct {
	name, value span
	id          hdr
}

type span struct{ start, end int32 }

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

// Head-reading errors; statusFor maps them.
var (
	errHeadTooLarge  = errors.New("head too large")
	errTooManyFields = errors.New("too many header fields")
	errBadHead       = errors.New("malformed head")
)

// readHead appends one message head (start line and header lines, through
// the blank line) from r to buf[:0], up to max bytes, and returns it (on
// errHeadTooLarge, its first max bytes). A request may have blank lines
// before it (RFC 9112 §2.2), and a start line without two spaces
// (HTTP/0.9) is refused at once rather than waited on.
func readHead(r *bufio.Reader, buf []byte, max int, request bool) ([]byte, error) {
	buf = buf[:0]
	for {
		line, err := r.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return append(buf, line[:max-len(buf)]...), errHeadTooLarge // what fits, for the log
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
			if len(buf) == n && request {
				buf = buf[:0]
				continue
			}
			return buf, nil
		}
		if len(buf) == n && bytes.Count(line, sp) < 2 && request {
			return buf, errBadRequest
		}
	}
}

var sp = []byte(" ")

// parseFields splits the header lines of head (after the start line, which
// ends at offset start) into fields, at most max of them. Lines end in CRLF
// or LF; each must be a valid field line (fieldSpans).
func parseFields(head []byte, start int, fields []field, max int) ([]field, error) {
	fields = fields[:0]
	i := start
	for i < len(head) {
		nl := bytes.IndexByte(head[i:], '\n')
		if nl < 0 {
			return fields, errBadHead
		}
		end := i + nl
		line := trimCRLF(head[i : end+1])
		if len(line) == 0 { // the blank line
			return fields, nil
		}
		if len(fields) == max {
			return fields, errTooManyFields
		}
		colon, vs, ve, ok := fieldSpans(line)
		if !ok {
			return fields, errBadHead
		}
		fields = append(fields, field{
			name:  span{int32(i), int32(i + colon)},
			value: span{int32(i + vs), int32(i + ve)},
			id:    headerID(line[:colon]),
		})
		i = end + 1
	}
	return fields, errBadHead
}

// fieldSpans checks one field line (without its line ending) and returns
// the offsets of its colon and of its value without the spaces around it.
// It rejects obsolete line folding, whitespace before the colon, names
// that are not tokens, and values with a control character (a bare CR
// among them) or DEL: each is a way to make two parsers disagree about a
// message.
func fieldSpans(line []byte) (colon, vs, ve int, ok bool) {
	colon = bytes.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) { // obs-fold, space before ':', or not a token
		return 0, 0, 0, false
	}
	vs, ve = colon+1, len(line)
	for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
		vs++
	}
	for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
		ve--
	}
	for _, c := range line[vs:ve] {
		if !isFieldValueChar(c) {
			return 0, 0, 0, false
		}
	}
	return colon, vs, ve, true
}
