package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"smoothserve/accesslog"
	"smoothserve/internal/rawio"
	"smoothserve/upstream"
)

// Connection states, for Shutdown: an idle connection is waiting for its
// next request and may be closed; an active one is reading or answering one.
const (
	stateNew    int32 = iota // accepted, not yet waiting for a request (InFlight does not count it)
	stateActive              // reading or answering a request
	stateIdle                // waiting for its next request
	stateFirst               // waiting for its first request: idle, but SetDraining leaves it be
	stateTunnel              // joined to an instance after a 101 (tunnel.go)
	stateParked              // idle, left to the parker by its goroutine (park.go)
)

// conn is one client connection. Its goroutine owns every field but state
// (read by Shutdown).
type conn struct {
	srv  *Server
	nc   net.Conn
	port int

	state atomic.Int32
	tun   atomic.Pointer[upstream.Conn] // stateTunnel: the instance's end, for Shutdown to interrupt

	secure   bool      // TLS (secure.go): never passed to another process, its state is this one's
	pre      *prefixed // bytes read by the process that passed this connection, read first
	keepHere bool      // shutting down, and handing this connection over failed: it closes here
	keepBy   time.Time // keepHere: when it closes if no request came (a grace from the failure)

	br *bufio.Reader // reads from cr
	bw *bufio.Writer
	cr clientReader

	rid         []byte         // the request's id (X-Request-Id)
	tunnelTo    *upstream.Conn // a 101 was relayed: the instance connection to join to this one
	tn          *tunnelState   // the tunnel this connection is (tunnel.go)
	rel         relay          // the response body being relayed, for passing or parking it mid-way (stream.go)
	strm        *streamState   // a quiet stream to be parked, or parked (streampark.go)
	compress    bool           // the request's service compresses its responses (compress.go)
	shard       uint32         // which shard of the stats this connection counts in (stats.go)
	sink        countingWriter // what bw writes to
	rio         *rawio.Conn    // a plain connection's reads and writes; nil for TLS (its rawTCPConn's, secure.go)
	rec         record         // the request being served (record.go)
	logTo       *accesslog.Log // where logBuf's lines go
	logBuf      *[]byte        // log lines not yet handed to logTo
	entry       accesslog.Entry
	logPort     []byte
	zw          flushing    // compressing the response being relayed: flushed with bw
	cw          chunkWriter // what zw writes to
	lim         io.LimitedReader
	maxBody     int64         // the request's service's max_body_size; 0: none
	headTimeout time.Duration // the request's service's response_header_timeout; 0: none

	clientIP []byte // the client's address, for X-Forwarded-For
	trusted  bool   // client is a trusted proxy: keep its X-Forwarded-*

	head   []byte  // the request head being served
	fields []field // its header lines
	out    []byte  // the head (and kept body) sent upstream
	rhead  []byte  // the response head being relayed
	rfield []field // its header lines
	body   []byte  // the kept request body
	dec    chunkedDecoder

	// The deadlines in force, so that they are renewed only when they have
	// come closer than deadlineSlack allows: setting one updates a runtime timer,
	// and doing that for every request is measurable.
	readBy   time.Time
	readKind readKind // what readBy is for: a renewable IdleTimeout, BodyTimeout or parkAfter, or other
	writeBy  time.Time

	// Parking (park.go).
	idleSince time.Time // when the wait for the next request began
	woke      bool      // taken up again after parking: the wait goes on from idleSince
	// lastCalled: draining, its wait for the next request has had its
	// last call (lastCall); the next timeout of that wait closes it.
	lastCalled bool
	// unwarned: shutting down, its last answer said keep-alive (so its
	// client was not told), and its client is still reading that answer;
	// its wait for the next request ends ShutdownGrace after it has read
	// it (graceWait).
	unwarned   bool
	unwarnedQ  int       // unwarned: the bytes its client had not acknowledged at the last look
	unwarnedBy time.Time // unwarned: its client must have read some more by then
	// lendWriter: waitForRequest is waiting, and bw, once flushed, goes
	// back to the pool meanwhile (flushToWait; readFirst lends br too).
	lendWriter bool
	raw        syscall.RawConn // the client's socket, made by socket() (peek.go)
	pslot      int32           // 1 + its slot among the parked, guarded by the parker's mu; 0: not parked
	pseq       uint32          // the parking's number, guarded by the parker's mu
}

type readKind uint8

const (
	readOther readKind = iota // HeaderTimeout, or a grace: not renewed
	readIdle
	readBody
	readPark // parkAfter, renewed as parkDeadline says
)

// deadlineSlack is how far a renewable deadline of d may lag behind the
// exact one: a keep-alive limit of 75 s need not be exact to the second.
// A short one gets a tenth of itself.
func deadlineSlack(d time.Duration) time.Duration {
	return min(time.Second, d/10)
}

// farEnough reports whether a renewable deadline by, of d, is far enough
// from now to stay where it is: nearer than d less its slack, it moves.
func farEnough(by, now time.Time, d time.Duration) bool {
	return by.Sub(now) > d-deadlineSlack(d)
}

// idleReadDeadline makes sure a read may wait IdleTimeout (less the slack).
func (c *conn) idleReadDeadline(now time.Time) {
	c.renewReadDeadline(now, readIdle, c.srv.opts.IdleTimeout)
}

// bodyReadDeadline makes sure a read of a request body may wait
// BodyTimeout (less the slack).
func (c *conn) bodyReadDeadline(now time.Time) {
	c.renewReadDeadline(now, readBody, c.srv.opts.BodyTimeout)
}

func (c *conn) renewReadDeadline(now time.Time, kind readKind, d time.Duration) {
	if c.readKind == kind && farEnough(c.readBy, now, d) {
		return
	}
	c.readBy, c.readKind = now.Add(d), kind
	c.nc.SetReadDeadline(c.readBy)
}

// setReadDeadline sets a read deadline that is not renewed.
func (c *conn) setReadDeadline(t time.Time) {
	c.readBy, c.readKind = t, readOther
	c.nc.SetReadDeadline(t)
}

// writeDeadline makes sure a write may take IdleTimeout (less the slack).
func (c *conn) writeDeadline(now time.Time) {
	idle := c.srv.opts.IdleTimeout
	if farEnough(c.writeBy, now, idle) {
		return
	}
	c.writeBy = now.Add(idle)
	c.nc.SetWriteDeadline(c.writeBy)
}

const (
	clientReadBuf  = 8 << 10
	clientWriteBuf = 16 << 10
	// maxKeptBody is the largest request body kept in memory, so that the
	// request can be sent again to another instance if the first one dies
	// before answering.
	maxKeptBody = 64 << 10
)

var (
	readerPool8 = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, clientReadBuf) }}
	writerPool  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, clientWriteBuf) }}
)

func newConn(s *Server, nc net.Conn, port int) *conn {
	c := &conn{srv: s, nc: nc, port: port, shard: connSeq.Add(1)}
	_, c.secure = nc.(*tls.Conn)
	// A TCP socket: accepted here (*net.TCPConn), or passed by another
	// process (*sockconn.Conn).
	if _, ok := nc.(syscall.Conn); ok {
		if rc := c.socket(); rc != nil {
			c.rio = new(rawio.Conn)
			c.rio.Init(rc)
		}
	}
	c.state.Store(stateNew)
	// Go accepts with TCP_NODELAY set already. The address comes from the
	// accept, without formatting and parsing it: connections are accepted
	// in storms when another smoothserve hands over.
	// A connection passed by another process has no address if its client
	// is already gone (getpeername fails): it is served, and sees EOF.
	var ap netip.AddrPort
	switch ra := nc.RemoteAddr().(type) {
	case nil:
	case *net.TCPAddr:
		if ra != nil {
			ap = ra.AddrPort()
		}
	default:
		ap, _ = netip.ParseAddrPort(ra.String())
	}
	if ap.IsValid() {
		ip := ap.Addr().Unmap()
		c.clientIP = ip.AppendTo(nil)
		for _, p := range s.opts.TrustedProxies {
			if p.Contains(ip) {
				c.trusted = true
				break
			}
		}
	}
	return c
}

// start gives the connection its buffers; close (or park) returns them.
func (c *conn) start() {
	c.acquire()
	c.startIO()
}

// startIO gives the connection its reader and writer, without the scratch
// slices a request needs (a tunnel passed by another process has none).
func (c *conn) startIO() {
	c.cr.c = c
	c.takeReader()
	c.sink.w = c.nc
	if c.rio != nil {
		c.sink.w = c.rio
	}
	c.takeWriter()
}

// takeWriter gives c a client writer from the pool; putWriter gives it
// back (waiting for a request, parking, a tunnel, close).
func (c *conn) takeWriter() {
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(&c.sink)
}

// takeReader gives c a client reader from the pool; putReader gives it
// back (waiting for a request: readFirst; parking, a quiet tunnel, close).
func (c *conn) takeReader() {
	c.br = readerPool8.Get().(*bufio.Reader)
	c.br.Reset(&c.cr)
}

func (c *conn) putReader() {
	if c.br == nil { // lent (sendRequest) when serving panicked
		return
	}
	c.br.Reset(nil)
	readerPool8.Put(c.br)
	c.br = nil
}

// putWriter gives c's writer back to the pool, unless it is a tunnel's
// small one (shrinkWriter), which is not the pool's.
func (c *conn) putWriter() {
	if c.bw != nil && c.bw.Size() == clientWriteBuf {
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
	}
	c.bw = nil
}

// serve serves the connection (a new one, or one taken up again after
// parking) until it ends, or is parked.
func (c *conn) serve() {
	c.start()
	if !c.serveOrPark() {
		c.close()
	}
}

// serveOrPark serves the connection's requests and reports whether it was
// parked: then this goroutine must not touch it again.
func (c *conn) serveOrPark() (parked bool) {
	defer c.recoverPanic()
	return c.serveRequests()
}

// recoverPanic ends a connection whose serving panicked, with the stack in
// the log, rather than the process and every other connection with it.
func (c *conn) recoverPanic() {
	if r := recover(); r != nil {
		c.srv.opts.Logger.Error("proxy: a connection's serving panicked; it is closed", "port", c.port,
			"client", string(c.clientIP), "request_id", string(c.rid), "panic", r, "stack", string(debug.Stack()))
	}
}

// serveRequests serves the connection's requests until it ends, or is
// parked (reported).
func (c *conn) serveRequests() (parked bool) {
	opts := &c.srv.opts
	for {
		if c.passing() && c.passOn() {
			return false
		}
		if err := c.waitForRequest(); err != nil {
			if err == errParked {
				return true
			}
			if c.passing() && isTimeout(err) {
				// To be handed over: in the line, or now (its client
				// has sent; or the end of its last response could not
				// be flushed: passOn's Flush fails again, and it ends).
				if !errors.Is(err, errClientGone) && c.parkable() && !c.clientSent() && c.parkInLine() {
					return true
				}
				continue
			}
			return false
		}
		c.beginRequest()
		// The head must arrive within HeaderTimeout; when all of it came
		// in the first read (the usual case), there is nothing to wait for.
		if !headBuffered(c.br) {
			c.setReadDeadline(time.Now().Add(opts.HeaderTimeout))
		}
		var err error
		c.head, err = readHead(c.br, c.head, opts.MaxHeaderBytes, true)
		if err != nil {
			c.rejectHead(err)
			return false
		}
		var req request
		if err := c.parseRequest(&req); err != nil {
			c.rejectHead(err)
			return false
		}
		more := c.serveRequest(&req)
		if c.tunnelTo != nil && c.joinTunnel(&req) {
			return true // a tunnel, parked: the parker's
		}
		if c.strm != nil {
			c.strm.req = req
			var parked bool
			if parked, more = c.streamOn(); parked {
				return true // a quiet stream: the parker's
			}
		}
		if !c.requestDone(&req, more) {
			return false
		}
	}
}

// requestDone counts and logs req, answered, and reports whether the
// connection goes on to its next request (more, from its answer).
func (c *conn) requestDone(req *request, more bool) bool {
	c.endRequest(req)
	if !more {
		if !req.close && c.srv.draining.Load() {
			c.srv.drainClosed.Add(1) // it would have stayed open but for draining
		}
		return false
	}
	return true
}

// passing reports whether this connection is to be handed over to another
// process when it is between two requests.
func (c *conn) passing() bool { return c.passingKept(c.keepHere) }

// passingKept is passing with keepHere as given: read by whoever owned the
// connection when it was (parkTunnel).
func (c *conn) passingKept(keepHere bool) bool {
	return c.srv.shutting.Load() && !keepHere && !c.secure && c.srv.passFn.Load() != nil
}

// closing reports whether the response being written is this connection's
// last: the server is draining (drain.go), or shutting down and not
// handing the connection over.
func (c *conn) closing() bool {
	return c.srv.draining.Load() || c.srv.shutting.Load() && (c.keepHere || c.secure || c.srv.passFn.Load() == nil)
}

// Flush sends what bw holds to the client, within IdleTimeout: a client
// that stops reading for that long is gone. It is the upstream.Flusher of
// the instance connection an exchange reads from, so nothing for the client
// waits while the proxy waits for the instance.
func (c *conn) Flush() error {
	c.zw.Flush()                             // nothing when not compressing
	if c.bw == nil || c.bw.Buffered() == 0 { // nil: lent while waiting for a request
		return nil
	}
	c.writeDeadline(time.Now())
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return nil
}

// PassNow reports whether the read of a response body that would wait for
// the instance should stop, for the response to be passed on from where it
// stands (stream.go): the instance connection's upstream.Client. Not with
// part of a chunk size line in the reader: a size line is read whole. R is
// nil while WaitBody waits (given back: nothing buffered).
func (c *conn) PassNow() bool {
	return c.rel.passable && (c.rel.uc.R == nil || c.rel.uc.R.Buffered() == 0) && c.passing()
}

// prefixed reads pre, then r.
type prefixed struct {
	pre []byte
	r   io.Reader
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// headBuffered reports whether br holds a complete message head.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, crlfcrlf) || bytes.Contains(b, lflf)
}

var crlfcrlf, lflf = []byte("\r\n\r\n"), []byte("\n\n")

func (c *conn) close() {
	if c.strm != nil { // a stream whose serving panicked
		c.abandonStream()
	}
	c.flushLog()
	c.nc.Close()
	c.putReader()
	c.putWriter()
	c.srv.forget(c)
}
