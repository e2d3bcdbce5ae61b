package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"smoothserve/upstream"
)

// Compression (a service's `compress`): a response of a text type, of at
// least minCompress bytes (or of unknown length), that the instance did
// not encode, for a client that accepts zstd or gzip, is compressed on its
// way, over HTTP/1.1 (then chunked) and HTTP/2 alike. Never a range, a
// no-transform, or a HEAD; a streamed response is compressed piece by
// piece, the compressor flushed before every wait for the instance, so
// that nothing is held back. The same rules (chooseEncoding) decide for
// both protocols.

// encoding is a content coding the proxy applies.
type encoding uint8

const (
	encNone encoding = iota
	encGzip
	encZstd
)

func (e encoding) String() string {
	switch e {
	case encGzip:
		return "gzip"
	case encZstd:
		return "zstd"
	}
	return ""
}

// minCompress is the smallest body worth compressing.
const minCompress = 1024

// compressInfo is what chooseEncoding looks at.
type compressInfo struct {
	acceptEncoding  []byte
	status          int
	head            bool
	length          int64 // -1: unknown
	contentType     []byte
	contentEncoding []byte
	contentRange    []byte
	cacheControl    []byte
}

// chooseEncoding is the coding to apply to a response, or encNone.
func chooseEncoding(ci *compressInfo) encoding {
	switch {
	case ci.head || ci.status != 200 || len(ci.contentEncoding) > 0 || len(ci.contentRange) > 0,
		ci.length >= 0 && ci.length < minCompress,
		listHas(ci.cacheControl, []byte("no-transform")),
		!compressibleType(ci.contentType):
		return encNone
	}
	return preferredEncoding(ci.acceptEncoding)
}

// compressibleType reports whether a Content-Type is text worth
// compressing: HTML, CSS, JS, JSON, SVG, plain text, XML.
func compressibleType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.ToLower(bytes.TrimSpace(ct))
	switch {
	case bytes.HasPrefix(ct, []byte("text/")) && !bytes.Equal(ct, []byte("text/event-stream")):
		return true
	case bytes.HasSuffix(ct, []byte("+json")), bytes.HasSuffix(ct, []byte("+xml")):
		return true
	}
	switch string(ct) {
	case "application/json", "application/javascript", "application/x-javascript", "application/xml",
		"image/svg+xml", "application/wasm", "application/manifest+json":
		return true
	}
	return false
}

// preferredEncoding reads Accept-Encoding: zstd or gzip, whichever the
// client prefers (zstd on a tie), neither if both are refused (q=0).
func preferredEncoding(ae []byte) encoding {
	qZstd, qGzip, qAny := -1.0, -1.0, -1.0
	for v := ae; len(v) > 0; {
		var tok []byte
		tok, v = nextToken(v)
		name, q := tok, 1.0
		if i := bytes.IndexByte(tok, ';'); i >= 0 {
			name = trimOWS(tok[:i])
			params := trimOWS(tok[i+1:])
			if p, ok := bytes.CutPrefix(bytes.ToLower(params), []byte("q=")); ok {
				if f, err := strconv.ParseFloat(string(p), 64); err == nil {
					q = f
				}
			}
		}
		switch {
		case equalFold(name, "zstd"):
			qZstd = q
		case equalFold(name, "gzip"), equalFold(name, "x-gzip"):
			qGzip = q
		case string(name) == "*":
			qAny = q
		}
	}
	if qZstd < 0 {
		qZstd = qAny
	}
	if qGzip < 0 {
		qGzip = qAny
	}
	switch {
	case qZstd > 0 && qZstd >= qGzip:
		return encZstd
	case qGzip > 0:
		return encGzip
	}
	return encNone
}

// compressor is a pooled encoder of either coding.
type compressor interface {
	io.Writer
	Flush() error
	Close() error
	Reset(w io.Writer)
}

// flushing is the compressor of the response being compressed (none:
// inactive), whose Flush does nothing when nothing was written since the
// last: a flush of nothing adds an empty block (gzip's five-byte sync
// marker), and a streamed response is flushed before every wait for the
// instance, over HTTP/2 twice (the wait's, then the read's that follows
// it).
type flushing struct {
	compressor
	wrote bool
}

// active reports whether a response is being compressed.
func (z *flushing) active() bool { return z.compressor != nil }

func (z *flushing) Write(p []byte) (int, error) {
	z.wrote = z.wrote || len(p) > 0
	return z.compressor.Write(p)
}

func (z *flushing) Flush() error {
	if !z.wrote {
		return nil
	}
	z.wrote = false
	return z.compressor.Flush()
}

type zstdWriter struct{ *zstd.Encoder }

func (z zstdWriter) Reset(w io.Writer) { z.Encoder.Reset(w) }

var (
	gzipPool = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, 5)
		return w
	}}
	zstdPool = sync.Pool{New: func() any {
		w, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true), zstd.WithZeroFrames(true))
		return zstdWriter{w}
	}}
)

// newCompressor is a pooled encoder of e writing to w; putCompressor
// returns it.
func newCompressor(e encoding, w io.Writer) compressor {
	var z compressor
	if e == encZstd {
		z = zstdPool.Get().(zstdWriter)
	} else {
		z = gzipPool.Get().(*gzip.Writer)
	}
	z.Reset(w)
	return z
}

func putCompressor(e encoding, z compressor) {
	z.Reset(io.Discard)
	if e == encZstd {
		zstdPool.Put(z)
	} else {
		gzipPool.Put(z)
	}
}

// weakETag makes a strong entity tag weak: the compressed bytes are not
// the instance's.
func weakETag(v []byte) []byte {
	if len(v) > 0 && v[0] == '"' {
		return append([]byte("W/"), v...)
	}
	return v
}

// encodingFor is the coding the proxy applies to resp, the answer to req
// over HTTP/1.1 (or encNone).
func (c *conn) encodingFor(req *request, resp *response, framing int) encoding {
	if !c.compress || req.minor != 1 || framing == bodyNone {
		return encNone
	}
	return answerEncoding(fieldList(c.head, c.fields, "accept-encoding"), isHead(req.method), c.rhead, c.rfield, resp, framing)
}

// answerEncoding is the coding for an answer with a body (resp, read from
// rhead into rfield, framed so) to a request that accepts ae (a HEAD one
// when head): both protocols' paths decide with it.
func answerEncoding(ae []byte, head bool, rhead []byte, rfield []field, resp *response, framing int) encoding {
	length := int64(-1)
	if framing == bodyLength {
		length = resp.contentLength
	}
	return chooseEncoding(&compressInfo{
		acceptEncoding:  ae,
		status:          resp.status,
		head:            head,
		length:          length,
		contentType:     fieldOf(rhead, rfield, "content-type"),
		contentEncoding: fieldOf(rhead, rfield, "content-encoding"),
		contentRange:    fieldOf(rhead, rfield, "content-range"),
		cacheControl:    fieldList(rhead, rfield, "cache-control"),
	})
}

// fieldList is the list the fields called name make together (RFC 9110
// §5.3): the one field's value as it is, or, when there are more, their
// values joined by commas in a new slice (the rare case allocates).
func fieldList(head []byte, fields []field, name string) []byte {
	var list []byte
	n := 0
	for i := range fields {
		f := &fields[i]
		if !equalFold(f.name.of(head), name) {
			continue
		}
		v := f.value.of(head)
		switch n++; n {
		case 1:
			list = v
		case 2:
			list = append(append(append([]byte(nil), list...), ','), v...)
		default:
			list = append(append(list, ','), v...)
		}
	}
	return list
}

// fieldOf is the value of the first field called name, or nil.
func fieldOf(head []byte, fields []field, name string) []byte {
	for i := range fields {
		if f := &fields[i]; equalFold(f.name.of(head), name) {
			return f.value.of(head)
		}
	}
	return nil
}

// relayCompressed relays the body of resp, framed so by the instance,
// compressed with enc, chunked.
func (c *conn) relayCompressed(uc *bufio.Reader, resp *response, framing int, enc encoding) error {
	src := decodedBody(uc, framing, resp.contentLength, &c.lim, &c.dec)
	c.cw.bw = c.bw
	z := newCompressor(enc, &c.cw)
	c.zw = flushing{compressor: z}
	defer func() {
		c.zw = flushing{}
		putCompressor(enc, z)
	}()
	if err := relayDecoded(&c.zw, src, framing, &c.lim, nil); err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	c.bw.WriteString("0\r\n\r\n")
	return nil
}

// decodedBody is a response body framed so (with length, for bodyLength),
// decoded, from r, through lim or dec; nil when there is none. Both
// protocols' paths read bodies through it.
func decodedBody(r *bufio.Reader, framing int, length int64, lim *io.LimitedReader, dec *chunkedDecoder) io.Reader {
	switch framing {
	case bodyLength:
		*lim = io.LimitedReader{R: r, N: length}
		return lim
	case bodyChunked:
		dec.reset(r)
		return dec
	case bodyUntilClose:
		return r
	}
	return nil
}

// relayDecoded copies a decoded body (decodedBody) from src to w through a
// pooled buffer, not io.Copy: a compressor's ReadFrom would be inside its
// own state when the read flushes it (before any wait for the instance). A
// body framed by length that ends before it is io.ErrUnexpectedEOF.
//
// With uc (HTTP/2's streams), a body that streams (chunked, or up to the
// close) waits for the instance in uc.WaitBody, as HTTP/1.1's relay does
// (awaitBody, on the same terms): the copy buffer and uc.R are back in
// their pools meanwhile, and src reads uc.R afresh after it. A quiet event
// stream holds neither.
func relayDecoded(w io.Writer, src io.Reader, framing int, lim *io.LimitedReader, uc *upstream.Conn) error {
	var bp *[]byte
	defer func() {
		if bp != nil {
			copyBufs.Put(bp)
		}
	}()
	for {
		if uc != nil && framing != bodyLength && uc.R.Buffered() == 0 && uc.LastRead() < streamPiece {
			if bp != nil {
				copyBufs.Put(bp)
				bp = nil
			}
			if err := uc.WaitBody(); err != nil {
				return fmt.Errorf("reading response body: %w", err)
			}
			src = readingFrom(src, uc.R)
		}
		if bp == nil {
			bp = copyBufs.Get().(*[]byte)
		}
		n, err := src.Read(*bp)
		if n > 0 {
			if _, werr := w.Write((*bp)[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == io.EOF && framing == bodyLength && lim.N > 0:
			return fmt.Errorf("reading response body: %w", io.ErrUnexpectedEOF)
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("reading response body: %w", err)
		}
	}
}

// readingFrom is src, a decodedBody not framed by length, reading from r,
// the instance's reader after a wait (WaitBody may have replaced it).
func readingFrom(src io.Reader, r *bufio.Reader) io.Reader {
	switch s := src.(type) {
	case *chunkedDecoder:
		s.r = r
	case *bufio.Reader:
		return r
	}
	return src
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// chunkWriter frames what is written to it as chunks of an HTTP/1.1 body.
type chunkWriter struct{ bw *bufio.Writer }

func (w *chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b := strconv.AppendInt(w.bw.AvailableBuffer(), int64(len(p)), 16)
	w.bw.Write(append(b, "\r\n"...))
	w.bw.Write(p)
	_, err := w.bw.WriteString("\r\n")
	return len(p), err
}
