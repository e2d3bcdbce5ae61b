package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

var errBadChunk = errors.New("malformed chunked body")

// maxChunkLine bounds a chunk-size line with its extensions, and a trailer
// line; maxTrailers bounds the trailer section's lines.
const (
	maxChunkLine = 4096
	maxTrailers  = 64
)

// readLine returns the next line of r, which must end in CRLF (a bare LF
// is tolerated in a head, never in chunked framing: a parser that takes it
// and one that does not would cut the body in different places), or an
// error when it is longer than maxChunkLine.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || (err == nil && (len(line) > maxChunkLine || len(line) < 2 || line[len(line)-2] != '\r')) {
		return nil, errBadChunk
	}
	return line, err
}

// parseChunkSize parses "1a;ext=1\r\n": hex digits, then optional
// whitespace and extensions, which are dropped (and must hold no control
// character).
func parseChunkSize(line []byte) (int64, error) {
	line = trimCRLF(line)
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		for _, c := range line[i:] {
			if !isFieldValueChar(c) {
				return 0, errBadChunk
			}
		}
		line = line[:i]
		for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
			line = line[:len(line)-1]
		}
	}
	if len(line) == 0 || len(line) > 15 {
		return 0, errBadChunk
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, errBadChunk
		}
		n = n<<4 | int64(d)
	}
	return n, nil
}

// lineWriter takes a trailer's field lines: the client's writer (HTTP/1.1)
// or a stream's buffer (HTTP/2, h2response.go).
type lineWriter interface {
	Write(p []byte) (int, error)
	WriteString(s string) (int, error)
}

// readTrailer reads the trailer section after the last chunk, through the
// blank line that ends it, and writes each field line to w (unless w is
// nil) with CRLF.
func readTrailer(r *bufio.Reader, w lineWriter) error {
	for n := 0; ; n++ {
		line, err := readLine(r)
		if err != nil {
			return err
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			return nil
		}
		if _, _, _, ok := fieldSpans(line); n == maxTrailers || !ok {
			return errBadChunk
		}
		if w != nil {
			w.Write(line)
			w.WriteString("\r\n")
		}
	}
}

// chunkedDecoder reads the data of a chunked body from r, and consumes the
// trailer section at its end, keeping its lines in trailer when that is
// set. It lives inside conn, so decoding allocates nothing.
type chunkedDecoder struct {
	r       *bufio.Reader
	trailer *bytes.Buffer
	left    int64 // data left in the current chunk
	done    bool
	err     error
}

func (d *chunkedDecoder) reset(r *bufio.Reader) { *d = chunkedDecoder{r: r} }

func (d *chunkedDecoder) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.done {
		return 0, io.EOF
	}
	if d.left == 0 {
		line, err := readLine(d.r)
		if err != nil {
			return 0, d.fail(err)
		}
		n, err := parseChunkSize(line)
		if err != nil {
			return 0, d.fail(err)
		}
		if n == 0 {
			var w lineWriter
			if d.trailer != nil {
				w = d.trailer
			}
			if err := readTrailer(d.r, w); err != nil {
				return 0, d.fail(err)
			}
			d.done = true
			return 0, io.EOF
		}
		d.left = n
	}
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.r.Read(p)
	d.left -= int64(n)
	if err != nil {
		return n, d.fail(err)
	}
	if d.left == 0 {
		if err := expectCRLF(d.r); err != nil {
			return n, d.fail(err)
		}
	}
	return n, nil
}

func (d *chunkedDecoder) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	d.err = err
	return err
}

// expectCRLF consumes the CRLF after a chunk's data.
func expectCRLF(r *bufio.Reader) error {
	for _, want := range [2]byte{'\r', '\n'} {
		c, err := r.ReadByte()
		if err != nil {
			return err
		}
		if c != want {
			return errBadChunk
		}
	}
	return nil
}

// chunkCheck is badChunkAhead's decoder over bytes already read; from
// chunkChecks, so that the check allocates nothing.
type chunkCheck struct {
	br      bytes.Reader
	r       *bufio.Reader
	d       chunkedDecoder
	scratch [512]byte
}

var chunkChecks = sync.Pool{New: func() any {
	c := &chunkCheck{}
	c.r = bufio.NewReaderSize(&c.br, maxChunkLine+2)
	return c
}}

// badChunkAhead reports whether the chunked body whose first bytes r holds
// (read with the head, not waited for) has a malformed chunk among them,
// judged by the decoder that will relay it. HTTP/2's bridge asks before it
// writes the head, which it cannot take back: what HTTP/1.1 drops by
// unsend (a 502 instead of an answer cut short) HTTP/2 never sends.
func badChunkAhead(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	if len(b) == 0 {
		return false
	}
	c := chunkChecks.Get().(*chunkCheck)
	defer chunkChecks.Put(c)
	c.br.Reset(b)
	c.r.Reset(&c.br)
	c.d.reset(c.r)
	for {
		if _, err := c.d.Read(c.scratch[:]); err != nil {
			return errors.Is(err, errBadChunk)
		}
	}
}
