package proxy

import (
	"bytes"
	"io"
	"strings"
	"time"

	"smoothserve/accesslog"
	"smoothserve/upstream"
)

// Each request's record: counted in its service's stats (stats.go) and
// written to its access log, when its answer is done. A connection keeps
// its log lines in a buffer of its own and hands it to the log when it is
// about to wait for its client (flushLog), so that neither costs a syscall
// or a shared lock per request.

// record is the request being served.
type record struct {
	start    time.Time
	sent0    int64   // c.sink.n + buffered when it began
	tg       *target // what its host routed to; nil: none
	status   int     // the status answered (499: the client left first)
	b        *upstream.Backend
	retried  bool
	upstream time.Duration
}

// countingWriter is what bw writes to: the connection, counting bytes.
type countingWriter struct {
	w io.Writer
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

// sent is how many bytes were written for the client so far. Without a
// writer (lent, or a parked stream's, given back) nothing is buffered: it
// was flushed first.
func (c *conn) sent() int64 {
	if c.bw == nil {
		return c.sink.n
	}
	return c.sink.n + int64(c.bw.Buffered())
}

// unsend drops the response being written, and reports that it did, if
// none of it has left for the client: it is all in bw, behind nothing of
// an earlier response (not compressed: the compressor holds its own
// state). An answer found bad before its first flush can still be a 502.
func (c *conn) unsend() bool {
	if c.bw == nil || c.bw.Buffered() == 0 || c.zw.active() || c.sink.n != c.rec.sent0 {
		return false
	}
	c.bw.Reset(&c.sink)
	return true
}

// beginRequest starts the record of a request whose first byte came.
func (c *conn) beginRequest() {
	c.rec = record{start: time.Now(), sent0: c.sent()}
}

// endRequest counts the request and logs it.
func (c *conn) endRequest(req *request) {
	r := &c.rec
	if r.status == 0 {
		return
	}
	d := time.Since(r.start)
	if r.tg != nil && r.tg.stats != nil {
		r.tg.stats.count(c.shard, req.method, r.status, d)
	}
	if l := c.srv.logFor(c.port, r.tg); l != nil {
		c.logLine(l, req, d)
	}
}

// logLine appends the request's line to the connection's log buffer.
func (c *conn) logLine(l *accesslog.Log, req *request, d time.Duration) {
	r := &c.rec
	e := &c.entry
	*e = accesslog.Entry{Time: r.start, Client: c.clientIP, Method: req.method, Target: req.target,
		Proto: "HTTP/1.1", Status: r.status, Bytes: c.sent() - r.sent0, Duration: d, Upstream: r.upstream,
		Service: r.tg.name(), Slot: -1, Retried: r.retried,
		UserAgent: fieldOf(c.head, c.fields, "user-agent"), Referer: fieldOf(c.head, c.fields, "referer")}
	if req.minor == 0 {
		e.Proto = "HTTP/1.0"
	}
	if c.trusted && len(req.xff) > 0 {
		if ip := lastListItem(req.xff); validIP(ip) {
			e.Client = ip
		}
	}
	if r.b != nil {
		e.Slot = r.b.Slot
		if i := strings.LastIndexByte(r.b.Addr, ':'); i >= 0 {
			e.Port = append(c.logPort[:0], r.b.Addr[i+1:]...)
			c.logPort = e.Port
		}
	}
	c.appendLog(l, e)
}

// maxLoggedLine is the most of a rejected request's first line its log
// line keeps.
const maxLoggedLine = 2 << 10

// logRejected logs a request whose head was answered with an error before
// it could be parsed: its first line as it came, as nginx's $request. It
// is logged where the port's requests without a service are.
func (c *conn) logRejected() {
	l := c.srv.logFor(c.port, nil)
	if l == nil {
		return
	}
	r := &c.rec
	line := trimCRLF(c.head[:firstLineEnd(c.head)])
	c.entry = accesslog.Entry{Time: r.start, Client: c.clientIP, Line: line[:min(len(line), maxLoggedLine)],
		Status: r.status, Bytes: c.sent() - r.sent0, Duration: time.Since(r.start), Slot: -1}
	c.appendLog(l, &c.entry)
}

// appendLog appends e's line, for log l, to the connection's log buffer.
func (c *conn) appendLog(l *accesslog.Log, e *accesslog.Entry) {
	if c.logTo != l {
		c.flushLog()
		c.logTo = l
	}
	if c.logBuf == nil {
		c.logBuf = accesslog.Buffer()
	}
	*c.logBuf = e.Append(*c.logBuf, l.Format)
	if len(*c.logBuf) >= 16<<10 {
		c.flushLog()
	}
}

// flushLog hands the connection's log lines to their log.
func (c *conn) flushLog() {
	if c.logBuf != nil && len(*c.logBuf) > 0 {
		c.logTo.Submit(c.logBuf)
		c.logBuf = nil
	}
}

// validIP reports whether b is an IP address, without allocating.
func validIP(b []byte) bool {
	if len(b) == 0 || len(b) > 45 {
		return false
	}
	for _, ch := range b {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F' || ch == '.' || ch == ':') {
			return false
		}
	}
	return true
}

// lastListItem is the last element of a comma-separated list: the address
// a trusted proxy saw its client connect from.
func lastListItem(v []byte) []byte {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		return trimOWS(v[i+1:])
	}
	return trimOWS(v)
}
