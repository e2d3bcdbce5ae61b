package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"smoothserve/upstream"
)

// h2Answer is an HTTP/2 stream's reading of its instance's answer, by the
// HTTP/1.1 path's own parser (parseResponse) and body readers: what
// HTTP/1.1 refuses as readable more than one way (two lengths, length and
// chunked, obs-fold, a bad status line, ...) is refused here too, and what
// it relays canonically is relayed the same. From h2Answers, one a stream.
type h2Answer struct {
	head    []byte // the response head, as read (readHead)
	fields  []field
	resp    response
	framing int
	dec     chunkedDecoder
	lim     io.LimitedReader
	trailer bytes.Buffer // a chunked body's trailer lines (dec.trailer)
}

var h2Answers = sync.Pool{New: func() any { return &h2Answer{head: make([]byte, 0, 1<<10)} }}

// answer is x's h2Answer, taken from the pool at the stream's first read.
func (x *bridge) answer() *h2Answer {
	if x.ans == nil {
		x.ans = h2Answers.Get().(*h2Answer)
	}
	return x.ans
}

// putAnswer gives the stream's h2Answer back, but for buffers an unusual
// answer grew.
func (x *bridge) putAnswer() {
	a := x.ans
	if a == nil {
		return
	}
	x.ans = nil
	if cap(a.head) > 8<<10 || cap(a.fields) > 64 || a.trailer.Cap() > 4<<10 {
		return
	}
	*a = h2Answer{head: a.head[:0], fields: a.fields[:0], trailer: a.trailer}
	a.trailer.Reset()
	h2Answers.Put(a)
}

// readResponse reads the instance's final response head into x.ans,
// passing interim responses (103 Early Hints) on, as HTTP/1.1 does
// (readResponseHead).
func (x *bridge) readResponse(uc *upstream.Conn) error {
	a := x.answer()
	for n := 0; ; n++ {
		var err error
		a.head, err = readHead(uc.R, a.head, maxResponseHead, false)
		switch {
		case errors.Is(err, errHeadTooLarge):
			return badResponse(fmt.Sprintf("response head over %d bytes", maxResponseHead))
		case err != nil && (len(a.head) > 0 || n > 0):
			return clientOr(fmt.Errorf("reading response head: %w", err))
		case err != nil:
			return upstreamFailed(uc, "reading response", err)
		}
		if a.fields, err = parseResponse(a.head, a.fields, &a.resp); err != nil {
			return err
		}
		switch status := a.resp.status; {
		case status == 101:
			return badResponse("101 Switching Protocols over HTTP/2")
		case status >= 200:
			return nil
		case n == maxInterim:
			return badResponse("too many interim responses")
		case status != 100: // the instance never saw Expect: the proxy answers it
			h := x.w.Header()
			a.copyFields(h, encNone)
			x.w.WriteHeader(status)
			clear(h) // the final response has fields of its own
		}
	}
}

// copyFields adds the answer's fields to h but the hop-by-hop ones and
// those its Connection names; with compression, an ETag becomes weak.
func (a *h2Answer) copyFields(h http.Header, enc encoding) {
	for i := range a.fields {
		f := &a.fields[i]
		if f.id.hopByHop() || (a.resp.conn.other && removedBy(a.head, a.fields, f)) {
			continue
		}
		name := canonicalName(f.name.of(a.head))
		value := f.value.of(a.head)
		if enc != encNone && name == "Etag" {
			value = weakETag(value)
		}
		h[name] = append(h[name], string(value))
	}
}

// setHeader sets the final response's fields, and its length as HTTP/1.1
// would (writeResponseHead): HTTP/2 frames the body anyway, but clients
// show progress by it, and a HEAD's or a 304's gives a size.
func (x *bridge) setHeader(a *h2Answer, enc encoding) {
	h := x.w.Header()
	a.copyFields(h, enc)
	if _, ok := h["Content-Type"]; !ok {
		// As over HTTP/1.1, none: net/http would guess one from the body
		// (text/html for a page an instance sent as nothing in particular).
		h["Content-Type"] = nil
	}
	switch {
	case enc != encNone:
		h.Set("Content-Encoding", enc.String())
		h.Add("Vary", "Accept-Encoding")
	case a.resp.passesLength(a.framing):
		h.Set("Content-Length", strconv.FormatInt(a.resp.contentLength, 10))
	}
}

// encodingFor is the coding the proxy applies to the answer (or encNone),
// decided as over HTTP/1.1 (answerEncoding).
func (x *bridge) encodingFor(a *h2Answer) encoding {
	if !x.compress || a.framing == bodyNone {
		return encNone
	}
	ae := []byte(strings.Join(x.r.Header.Values("Accept-Encoding"), ","))
	return answerEncoding(ae, x.r.Method == http.MethodHead, a.head, a.fields, &a.resp, a.framing)
}

// copyBody relays the answer's body from uc, compressed with enc if not
// encNone, waiting for the instance without buffers (relayDecoded). A body
// that ends before its length is an error, as over HTTP/1.1.
func (x *bridge) copyBody(a *h2Answer, uc *upstream.Conn, enc encoding) error {
	src := decodedBody(uc.R, a.framing, a.resp.contentLength, &a.lim, &a.dec)
	if src == nil {
		return nil
	}
	a.trailer.Reset()
	a.dec.trailer = &a.trailer
	if enc == encNone {
		return relayDecoded(x.w, src, a.framing, &a.lim, uc)
	}
	z := newCompressor(enc, x.w)
	x.zw = flushing{compressor: z}
	defer func() {
		x.zw = flushing{}
		putCompressor(enc, z)
	}()
	if err := relayDecoded(&x.zw, src, a.framing, &a.lim, uc); err != nil {
		return err
	}
	return z.Close()
}

// setTrailer passes a chunked answer's trailer fields on as the stream's
// trailer, but the hop-by-hop ones.
func (x *bridge) setTrailer(a *h2Answer) {
	if a.framing != bodyChunked || a.trailer.Len() == 0 {
		return
	}
	h := x.w.Header()
	for line := range bytes.SplitSeq(a.trailer.Bytes(), []byte("\r\n")) {
		colon, vs, ve, ok := fieldSpans(line)
		if !ok || headerID(line[:colon]).hopByHop() {
			continue
		}
		h.Add(http.TrailerPrefix+canonicalName(line[:colon]), string(line[vs:ve]))
	}
}

// nothingBeyond reports whether nothing more of the instance's is waiting
// on uc after its answer (else uc may not be reused).
func (x *bridge) nothingBeyond(b *upstream.Backend, uc *upstream.Conn) bool {
	if uc.R.Buffered() > 0 {
		x.logUpstream(b, errors.New("instance sent bytes beyond its response"), "connection to the instance closed")
		return false
	}
	return true
}

// commonNames holds the usual response field names in their canonical
// form, keyed by it, by its lower case and by its usual spelling:
// canonicalName finds them without allocating.
var commonNames = func() map[string]string {
	m := map[string]string{"ETag": "Etag", "WWW-Authenticate": "Www-Authenticate"}
	for _, n := range []string{"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Alt-Svc", "Cache-Control",
		"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Content-Type", "Date", "Etag", "Expires", "Last-Modified", "Link", "Location",
		"Retry-After", "Server", "Set-Cookie", "Strict-Transport-Security", "Vary", "Www-Authenticate",
		"X-Content-Type-Options", "X-Frame-Options", "X-Powered-By", "X-Request-Id"} {
		m[n], m[strings.ToLower(n)] = n, n
	}
	return m
}()

// canonicalName is the field name b as http.Header keys it.
func canonicalName(b []byte) string {
	if n, ok := commonNames[string(b)]; ok {
		return n
	}
	return http.CanonicalHeaderKey(string(b))
}
