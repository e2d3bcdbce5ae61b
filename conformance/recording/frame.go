package recording

import (
	"bytes"
	"strings"
)

// Frame is where a request ends in a buffer, read leniently.
type Frame struct {
	HeadEnd        int  // offset past the head's blank line; 0: the head is incomplete
	End            int  // offset past the body; 0: incomplete
	Bad            bool // the framing cannot be read; End is len(b)
	Method, Target string
}

// maxHead bounds a head the recorder waits for.
const maxHead = 1 << 20

// SkipBlankLines drops the empty lines a request may be preceded by.
func SkipBlankLines(b []byte) []byte {
	for {
		switch {
		case bytes.HasPrefix(b, []byte("\r\n")):
			b = b[2:]
		case bytes.HasPrefix(b, []byte("\n")):
			b = b[1:]
		default:
			return b
		}
	}
}

// FrameRequest finds the end of the request at the start of b: the head
// ends at the first empty line (LF or CRLF); a Transfer-Encoding whose
// last coding is chunked frames the body, else the first Content-Length.
func FrameRequest(b []byte) Frame {
	var f Frame
	lines, headEnd := splitHead(b)
	if headEnd == 0 {
		if len(b) > maxHead {
			return Frame{Bad: true, End: len(b)}
		}
		return f
	}
	f.HeadEnd = headEnd
	if words := strings.Fields(string(lines[0])); len(words) > 0 {
		f.Method = words[0]
		if len(words) > 1 {
			f.Target = words[1]
		}
	}
	chunked, length, ok := framing(lines[1:])
	switch {
	case !ok:
		f.Bad, f.End = true, len(b)
	case chunked:
		end, bad := chunkedEnd(b, headEnd)
		f.End, f.Bad = end, bad
		if bad {
			f.End = len(b)
		}
	case int64(len(b)-headEnd) >= length:
		f.End = headEnd + int(length)
	}
	return f
}

// splitHead returns the head's lines (without line ends) and the offset
// past its empty line, or 0 if b holds no complete head.
func splitHead(b []byte) (lines [][]byte, end int) {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return nil, 0
		}
		line := bytes.TrimSuffix(b[i:i+j], []byte("\r"))
		i += j + 1
		if len(line) == 0 {
			return lines, i
		}
		lines = append(lines, line)
	}
	return nil, 0
}

// framing reads the body's framing from header lines: chunked, or a
// length (0 when none). ok is false for a length that is not a number.
func framing(fields [][]byte) (chunked bool, length int64, ok bool) {
	length = -1
	for _, line := range fields {
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		name = bytes.TrimSpace(name)
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			codings := bytes.Split(value, []byte(","))
			chunked = bytes.EqualFold(bytes.TrimSpace(codings[len(codings)-1]), []byte("chunked"))
		case bytes.EqualFold(name, []byte("content-length")) && length < 0:
			n, valid := leadingDigits(value)
			if !valid {
				return false, 0, false
			}
			length = n
		}
	}
	return chunked, max(length, 0), true
}

// leadingDigits parses the digits at the start of v, as atoi-style
// backends do.
func leadingDigits(v []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(v) && '0' <= v[i] && v[i] <= '9'; i++ {
		if n > 1<<40 {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, i > 0
}

// chunkedEnd returns the offset past a chunked body starting at off, 0 if
// it is incomplete, or bad if a chunk-size line holds no hex digit or a
// chunk's data is not followed by a line end.
func chunkedEnd(b []byte, off int) (end int, bad bool) {
	for {
		j := bytes.IndexByte(b[off:], '\n')
		if j < 0 {
			return 0, false
		}
		line := bytes.TrimSpace(b[off : off+j])
		off += j + 1
		size, ok := leadingHex(line)
		if !ok {
			return 0, true
		}
		if size == 0 {
			return trailerEnd(b, off)
		}
		if int64(len(b)-off) < size+1 {
			return 0, false
		}
		off += int(size)
		switch {
		case b[off] == '\n':
			off++
		case b[off] == '\r' && off+1 < len(b) && b[off+1] == '\n':
			off += 2
		case b[off] == '\r' && off+1 == len(b):
			return 0, false
		default:
			return 0, true
		}
	}
}

// trailerEnd returns the offset past the trailer section at off (lines up
// to an empty one), or 0 if it is incomplete.
func trailerEnd(b []byte, off int) (int, bool) {
	for {
		j := bytes.IndexByte(b[off:], '\n')
		if j < 0 {
			return 0, false
		}
		line := bytes.TrimSuffix(b[off:off+j], []byte("\r"))
		off += j + 1
		if len(line) == 0 {
			return off, false
		}
	}
}

func leadingHex(v []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(v); i++ {
		c := v[i] | 0x20
		var d byte
		switch {
		case '0' <= v[i] && v[i] <= '9':
			d = v[i] - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return n, i > 0 && n <= 1<<40
		}
		if n > 1<<40 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, i > 0
}
