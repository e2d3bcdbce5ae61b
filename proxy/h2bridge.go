package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"smoothserve/accesslog"
	"smoothserve/upstream"
)

// bridge is one HTTP/2 stream sent to an instance over HTTP/1.1, with the
// semantics of the HTTP/1.1 path: routing, choice of instance (picker),
// retries only where resending can do no harm, one status mapping
// (statusFor), forwarding headers, limits.
type bridge struct {
	f    *h2Front
	w    http.ResponseWriter
	r    *http.Request
	rc   *http.ResponseController
	rid  string
	hbuf *[]byte   // the request head's buffer (head), from headBufs
	ans  *h2Answer // the instance's answer as read (h2response.go), from h2Answers

	body        []byte // the whole body, when kept (see maxKeptBody)
	kept        bool
	compress    bool          // the service compresses its responses (compress.go)
	maxBody     int64         // the service's max_body_size; 0: none
	headTimeout time.Duration // the service's response_header_timeout; 0: none
	zw          flushing      // compressing the response: flushed before every wait for the instance
	began       bool          // the response's head is written: what follows may be flushed

	// The record (record.go's, for HTTP/2).
	start    time.Time
	tg       *target
	status   int
	b        *upstream.Backend
	retried  bool
	upstream time.Duration
	sent     countingResponse
}

func (h *h2Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &bridge{f: h, r: r, rc: http.NewResponseController(w), start: time.Now()}
	x.sent.ResponseWriter, x.sent.rc, x.sent.idle = w, x.rc, h.s.opts.IdleTimeout
	x.w = &x.sent
	x.rid = newRequestID()
	h.s.h2Streams.Add(1)
	defer h.s.h2Streams.Add(-1)
	defer x.end()
	defer x.putHead()
	defer x.putAnswer()
	x.serve()
}

// countingResponse counts the body bytes written, and gives each write
// (and flush) a deadline.
type countingResponse struct {
	http.ResponseWriter
	n       int64
	rc      *http.ResponseController
	idle    time.Duration // IdleTimeout
	writeBy time.Time
}

func (w *countingResponse) Write(p []byte) (int, error) {
	w.deadline()
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// deadline gives the stream's writes IdleTimeout from now, as an HTTP/1.1
// connection's (conn.writeDeadline): a client that opens no window for
// them that long (its connection alive, answering PINGs) has its stream
// reset, and the instance's request ends, as nginx's send_timeout does.
// The deadline moves only when it is nearer than its slack (a timer's
// reset a write would cost).
func (w *countingResponse) deadline() {
	now := time.Now()
	if farEnough(w.writeBy, now, w.idle) {
		return
	}
	w.writeBy = now.Add(w.idle)
	w.rc.SetWriteDeadline(w.writeBy)
}

// noDeadline takes the stream's write deadline away, while nothing is
// written: net/http resets a stream when its deadline passes, written to
// or not.
func (w *countingResponse) noDeadline() {
	if !w.writeBy.IsZero() {
		w.writeBy = time.Time{}
		w.rc.SetWriteDeadline(time.Time{})
	}
}

// end counts the stream's request and logs it.
func (x *bridge) end() {
	if x.status == 0 {
		return
	}
	d := time.Since(x.start)
	if x.tg != nil && x.tg.stats != nil {
		x.tg.stats.count(uint32(x.start.UnixNano()), []byte(x.r.Method), x.status, d)
	}
	l := x.f.s.logFor(x.f.port, x.tg)
	if l == nil {
		return
	}
	client, trusted := x.client()
	if xff := x.r.Header.Get("X-Forwarded-For"); trusted && xff != "" {
		if ip := lastListItem([]byte(xff)); validIP(ip) {
			client = string(ip)
		}
	}
	e := accesslog.Entry{Time: x.start, Client: []byte(client), Method: []byte(x.r.Method), Target: []byte(x.r.RequestURI),
		Proto: "HTTP/2.0", Status: x.status, Bytes: x.sent.n, Duration: d, Upstream: x.upstream, Service: x.tg.name(),
		Slot: -1, Retried: x.retried, UserAgent: []byte(x.r.UserAgent()), Referer: []byte(x.r.Referer())}
	if x.b != nil {
		e.Slot = x.b.Slot
		if i := strings.LastIndexByte(x.b.Addr, ':'); i >= 0 {
			e.Port = []byte(x.b.Addr[i+1:])
		}
	}
	b := accesslog.Buffer()
	*b = e.Append(*b, l.Format)
	l.Submit(b)
}

func (x *bridge) serve() {
	// net/http's HTTP/2 server takes any :method without CR, LF or NUL;
	// the instance gets it on an HTTP/1.1 request line, where only a
	// token can stand, as the HTTP/1.1 parser requires.
	if !isToken([]byte(x.r.Method)) {
		x.fail(fmt.Errorf("%w: method %q is not a token", errBadRequest, x.r.Method))
		return
	}
	// Nor does it check :authority (or Host), which the instance gets as
	// its Host: host[:port], as over HTTP/1.1. None, or an empty one, is
	// 400 as a missing Host is over HTTP/1.1 (and by nginx): the instance
	// would get its own address as Host.
	if !validHost([]byte(x.r.Host)) {
		x.fail(fmt.Errorf("%w: %q", errBadHost, x.r.Host))
		return
	}
	if pt := x.f.s.routes.Load().ports[x.f.port]; pt != nil {
		x.tg = pt.lookup([]byte(x.r.Host))
	}
	set := x.tg.setOrNil()
	if set == nil {
		x.fail(fmt.Errorf("%w %q on port %d", errNoHost, x.r.Host, x.f.port))
		return
	}
	if set.Stopped() {
		x.fail(fmt.Errorf("%w: %s", errServiceStopped, set.Name))
		return
	}
	if x.r.Method == http.MethodConnect {
		x.fail(errConnect)
		return
	}
	if !validTarget(x.r.Method, x.target()) {
		x.fail(fmt.Errorf("%w: %q", errBadTarget, x.target()))
		return
	}
	if n, max := fieldCount(x.r.Header), x.f.s.opts.MaxHeaderFields; n > max {
		x.fail(fmt.Errorf("%w: %d, more than %d", errTooManyFields, n, max))
		return
	}
	// net/http takes a content-length that is not one number as 0, and
	// the body would be dropped: refused, as over HTTP/1.1.
	if vs, ok := x.r.Header["Content-Length"]; ok {
		if n, valid := parseContentLength([]byte(vs[0])); len(vs) != 1 || !valid || n != x.r.ContentLength {
			x.fail(fmt.Errorf("%w: content-length %q", errBadRequest, strings.Join(vs, ", ")))
			return
		}
	}
	x.compress, x.maxBody, x.headTimeout = set.Compress(), set.MaxBodySize(), set.ResponseHeaderTimeout()
	if err := x.readBody(x.maxBody); err != nil {
		x.fail(err)
		return
	}
	x.forward(set)
}

func (x *bridge) forward(set *upstream.Set) {
	p := picker{set: set, client: h2Client{x}}
	defer p.done()
	idem := idempotent([]byte(x.r.Method))
	maxIdle := time.Duration(0)
	if !x.kept || !idem {
		maxIdle = freshIdle
	}
	for attempt := 0; ; attempt++ {
		b, err := p.next()
		if err != nil {
			x.fail(err)
			return
		}
		uc, err := x.f.s.get(b, maxIdle)
		if err != nil {
			b.Release(false)
			p.failed(b, err)
			x.logUpstream(b, err, "trying another instance")
			if attempt+1 >= maxAttempts {
				x.fail(err)
				return
			}
			continue
		}
		x.b, x.retried = b, attempt > 0
		t0 := time.Now()
		p.sent()
		began, err := x.exchange(b, uc)
		if err != nil && !began && errors.Is(err, errStale) && x.kept && (idem || errors.Is(err, upstream.ErrStaleNotSent)) {
			stale := err
			if uc, err = x.f.s.dial(b); err == nil {
				x.retried = true
				began, err = x.exchange(b, uc)
			} else {
				err = afterStale(err, stale)
			}
		}
		x.upstream += time.Since(t0)
		b.Release(err == nil)
		switch {
		case err == nil:
			return
		case began || errors.Is(err, errClientGone) || x.r.Context().Err() != nil:
			if !errors.Is(err, errClientGone) && x.r.Context().Err() == nil {
				x.logUpstream(b, err, "stream reset") // the instance's failure: a client that left is only logged 499, as over HTTP/1.1
			}
			if !began {
				x.status = statusCode499
			}
			panic(http.ErrAbortHandler) // the client sees the stream reset, not a truncated body taken for whole
		case clientFault(err): // a streamed body the client got wrong
			x.fail(err)
			return
		case errors.Is(err, errBadResponse) || errors.Is(err, upstream.ErrNoAnswer) || !x.kept || !idem || attempt+1 >= maxAttempts || !p.mayResend():
			x.logUpstream(b, err, "answered with an error")
			x.fail(err)
			return
		}
		p.failed(b, err)
		x.logUpstream(b, err, "retrying on another instance")
	}
}

// send writes the request head (with the kept body) to the instance: when
// that is the whole request, the write also waits for the answer to begin,
// as over HTTP/1.1 (conn.sendRequest).
func (x *bridge) send(uc *upstream.Conn, head []byte) error {
	if x.kept {
		return uc.WriteRequest(head)
	}
	_, err := uc.Write(head)
	return err
}

// exchange sends the request over uc and relays the response; began says
// whether any of the response went to the client. uc is pooled or closed.
func (x *bridge) exchange(b *upstream.Backend, uc *upstream.Conn) (began bool, err error) {
	reusable := false
	defer func() {
		if reusable {
			b.Put(uc)
		} else {
			uc.Close()
		}
	}()
	uc.SetClient(h2Client{x})
	if x.kept {
		uc.WatchGone(x.headTimeout) // WriteRequest's wait for the answer looks at the client too
	}
	if err := x.send(uc, x.head(b.Addr)); err != nil {
		return false, upstreamFailed(uc, "sending request", err)
	}
	if !x.kept {
		// An instance that answered early (a 413) and stopped reading:
		// its answer goes to the client, as over HTTP/1.1.
		if err := x.streamBody(uc); err != nil && (!errors.Is(err, errSendingBody) || !answeredEarly(uc)) {
			return false, err
		}
	}
	uc.WatchGone(x.headTimeout) // a stream the client reset while the instance thinks ends, as over HTTP/1.1
	if err := x.readResponse(uc); err != nil {
		return false, err
	}
	a := x.ans
	a.framing = responseFraming(x.r.Method == http.MethodHead, &a.resp)
	if a.framing == bodyChunked && badChunkAhead(uc.R) {
		return false, fmt.Errorf("%w: %w", errBadResponse, errBadChunk)
	}
	enc := x.encodingFor(a)
	x.setHeader(a, enc)
	x.w.WriteHeader(a.resp.status)
	x.status, x.began = a.resp.status, true
	uc.WatchClient()
	if err := x.copyBody(a, uc, enc); err != nil {
		if errors.Is(err, upstream.ErrClientGone) || errors.Is(err, upstream.ErrFlush) || x.r.Context().Err() != nil {
			err = fmt.Errorf("%w: %w", errClientGone, err)
		}
		return true, err
	}
	x.setTrailer(a)
	reusable = a.resp.reusable(a.framing) && x.nothingBeyond(b, uc)
	return true, nil
}

// head is the HTTP/1.1 request head for the instance at addr, followed by
// the body when it is kept, in x's head buffer (headBufs): valid until the
// next call, or the stream's end.
func (x *bridge) head(addr string) []byte {
	r := x.r
	if x.hbuf == nil {
		x.hbuf = headBufs.Get().(*[]byte)
	}
	out := (*x.hbuf)[:0]
	out = append(append(append(out, r.Method...), ' '), x.target()...)
	out = append(append(append(out, " HTTP/1.1\r\nHost: "...), cmpOr(r.Host, addr)...), "\r\n"...)
	client, trusted := x.client()
	for k, vs := range r.Header {
		id := headerID([]byte(k))
		if id.hopByHop() || id == hdrHost || id == hdrXForwardedFor || id == hdrXForwardedHost ||
			id == hdrXForwardedProto || id == hdrXRequestID || id == hdrExpect || id == hdrForwardedAlias {
			continue
		}
		for _, v := range vs {
			out = appendField(out, k, v)
		}
	}
	xfh, xfp := r.Host, "https"
	out = append(out, "X-Forwarded-For: "...)
	if trusted {
		if v := r.Header.Get("X-Forwarded-For"); v != "" {
			out = append(append(out, v...), ", "...)
		}
		xfh = cmpOr(r.Header.Get("X-Forwarded-Host"), xfh)
		xfp = cmpOr(r.Header.Get("X-Forwarded-Proto"), xfp)
	}
	out = append(append(out, client...), "\r\n"...)
	out = appendField(out, "X-Forwarded-Host", xfh)
	out = appendField(out, "X-Forwarded-Proto", xfp)
	out = appendField(out, "X-Request-Id", x.rid)
	switch {
	case !x.kept:
		out = append(out, "Transfer-Encoding: chunked\r\n\r\n"...)
	case len(x.body) > 0 || r.ContentLength == 0 && bodyMethod(r.Method):
		out = strconv.AppendInt(append(out, "Content-Length: "...), int64(len(x.body)), 10)
		out = append(append(out, "\r\n\r\n"...), x.body...)
	default:
		out = append(out, "\r\n"...)
	}
	*x.hbuf = out
	return out
}

// appendField appends the header field "k: v".
func appendField(out []byte, k, v string) []byte {
	return append(append(append(append(out, k...), ": "...), v...), "\r\n"...)
}

// headBufs are the streams' buffers for their request heads (bridge.head);
// one grown past maxPooledHead by a kept body is left to the collector.
var headBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

const maxPooledHead = 8 << 10

// putHead gives the head buffer back, once nothing refers to it.
func (x *bridge) putHead() {
	if x.hbuf != nil && cap(*x.hbuf) <= maxPooledHead {
		headBufs.Put(x.hbuf)
	}
	x.hbuf = nil
}

// target is the request target sent to the instance: the :path as the
// client sent it.
func (x *bridge) target() string {
	if t := x.r.RequestURI; t != "" {
		return t
	}
	return x.r.URL.RequestURI()
}

// fieldCount is how many fields h holds, as the HTTP/1.1 parser counts
// them: a field a client sent twice, or a cookie in pieces, is that many.
func fieldCount(h http.Header) int {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	return n
}

// validTarget reports whether t, a :path, can go on an HTTP/1.1 request
// line as the HTTP/1.1 parser would take it: visible ASCII, no '#', and
// in origin-form ("/..."; RFC 9113 §8.3.1), or "*" for OPTIONS. An
// absolute URI there would name a host of its own to the instance, which
// takes it over Host (RFC 9112 §3.2.2): the route, by :authority, would
// not be the host the instance serves.
func validTarget(method, t string) bool {
	if t == "" || t[0] != '/' && (t != "*" || method != http.MethodOptions) {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// client is the client's address, and whether it is a trusted proxy.
func (x *bridge) client() (string, bool) {
	ap, err := netip.ParseAddrPort(x.r.RemoteAddr)
	if err != nil {
		return x.r.RemoteAddr, false
	}
	ip := ap.Addr().Unmap()
	for _, p := range x.f.s.opts.TrustedProxies {
		if p.Contains(ip) {
			return ip.String(), true
		}
	}
	return ip.String(), false
}

func (x *bridge) fail(err error) {
	code := statusFor(err)
	x.status = code
	if code == statusCode499 {
		// Gone; should it still be there, it sees its stream reset, not
		// the empty 200 net/http would send for a handler that wrote
		// nothing.
		panic(http.ErrAbortHandler)
	}
	level := slog.LevelInfo
	if code >= 500 {
		level = slog.LevelWarn
	}
	x.f.s.opts.Logger.Log(context.Background(), level, "proxy: request answered with an error",
		"status", code, "request_id", x.rid, "client", x.r.RemoteAddr, "port", x.f.port, "proto", "h2",
		"method", x.r.Method, "host", x.r.Host, "target", x.r.RequestURI, "err", err)
	h := x.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Request-Id", x.rid)
	if code == 503 {
		h.Set("Retry-After", "1")
	}
	x.w.WriteHeader(code)
	io.WriteString(x.w, statusText(code)+"\n")
}

func (x *bridge) logUpstream(b *upstream.Backend, err error, action string) {
	x.f.s.opts.Logger.Warn("proxy: instance failed", "service", b.Service, "slot", b.Slot, "addr", b.Addr,
		"request_id", x.rid, "proto", "h2", "method", x.r.Method, "target", x.r.RequestURI, "err", err, "action", action)
}

// h2Client is the upstream.Client of a stream: what the proxy holds for
// it is flushed before any wait for the instance.
type h2Client struct{ x *bridge }

func (c h2Client) Flush() error {
	if !c.x.began {
		return nil // a flush before the head would send a 200 without its fields
	}
	c.x.zw.Flush() // nothing when not compressing
	c.x.sent.deadline()
	err := c.x.rc.Flush()
	c.x.sent.noDeadline() // the instance is waited for now: a quiet stream is no stalled client
	return err
}
func (c h2Client) Gone() bool                 { return c.x.r.Context().Err() != nil }
func (c h2Client) PassNow() bool              { return false }
func (c h2Client) ParkNow(time.Duration) bool { return false }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// newRequestID is a stream's X-Request-Id, made as over HTTP/1.1.
func newRequestID() string {
	var b [32]byte
	return string(appendNewRequestID(b[:0]))
}
