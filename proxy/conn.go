package proxy

import (
	"bufio"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states, for Shutdown: an idle connection is waiting for its
// next request and may be closed; an active one is reading or answering one.
const (
	stateActive int32 = iota
	stateIdle
)

// conn is one client connection. Its goroutine owns every field but state
// (read by Shutdown).
type conn struct {
	srv  *Server
	nc   net.Conn
	port int

	state atomic.Int32

	br *bufio.Reader
	bw *bufio.Writer

	clientIP []byte // the client's address, for X-Forwarded-For
	trusted  bool   // client is a trusted proxy: keep its X-Forwarded-*

	head   []byte  // the request head being served
	fields []field // its header lines
	out    []byte  // the head (and kept body) sent upstream
	rhead  []byte  // the response head being relayed
	rfield []field // its header lines
	body   []byte  // the kept request body
	dec    chunkedDecoder
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
	c := &conn{srv: s, nc: nc, port: port}
	c.state.Store(stateActive)
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
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

func (c *conn) serve() {
	c.br = readerPool8.Get().(*bufio.Reader)
	c.br.Reset(c.nc)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(c.nc)
	defer c.close()
	opts := &c.srv.opts
	for {
		if !c.waitForRequest() {
			return
		}
		c.nc.SetReadDeadline(time.Now().Add(opts.HeaderTimeout))
		var err error
		c.head, err = readHead(c.br, c.head, opts.MaxHeaderBytes)
		if err != nil {
			c.rejectHead(err)
			return
		}
		var req request
		if err := c.parseRequest(&req); err != nil {
			c.rejectHead(err)
			return
		}
		if !c.serveRequest(&req) {
			return
		}
	}
}

// waitForRequest waits for the first byte of the next request, and reports
// whether one came.
func (c *conn) waitForRequest() bool {
	if c.br.Buffered() > 0 { // pipelined
		c.state.Store(stateActive)
		return true
	}
	// The deadline is set before the state says idle, and the shutdown flag
	// is read after: Shutdown does the opposite, so one of the two sees the
	// other and the grace deadline wins.
	c.nc.SetReadDeadline(time.Now().Add(c.srv.opts.IdleTimeout))
	c.state.Store(stateIdle)
	if c.srv.shutting.Load() {
		c.nc.SetReadDeadline(c.srv.graceDeadline())
	}
	_, err := c.br.Peek(1)
	c.state.Store(stateActive)
	return err == nil
}

func (c *conn) close() {
	c.nc.Close()
	c.br.Reset(nil)
	readerPool8.Put(c.br)
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.srv.forget(c)
}
