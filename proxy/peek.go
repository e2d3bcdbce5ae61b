package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"

	"smoothserve/internal/sockpeek"
)

// Gone reports, without waiting (over TLS, at most readAheadWait), whether
// the client has closed (or reset) its connection, or it was closed here
// (Close, the end of a stop's grace): what upstream.Conn.WatchClient asks
// while the instance is quiet. A connection with no socket to look at is
// there. Bytes it sent (its next request, a stray CRLF) do not say it is
// there: a close behind them does say it left (hungUp), as nginx sees it
// (EPOLLRDHUP). Over TLS those bytes are read (readAhead): they may be its
// close_notify.
func (c *conn) Gone() bool {
	if c.br != nil && c.br.Buffered() > 0 || (c.pre != nil && len(c.pre.pre) > 0) { // nil: lent (awaitBody)
		return c.hungUp()
	}
	st, ok := c.peekClient()
	switch {
	case !ok:
		return c.socket() != nil
	case st == sockpeek.Data && c.secure:
		return c.readAhead() || c.hungUp()
	case st == sockpeek.Data:
		return c.hungUp()
	}
	return st == sockpeek.Closed
}

// hungUp reports whether the client closed its sending side (or reset the
// connection) behind bytes it sent that wait to be read.
func (c *conn) hungUp() bool {
	h := false
	c.onSocket(func(fd uintptr) { h = sockpeek.HungUpFD(fd) })
	return h
}

// readAheadWait is how long readAhead waits for the rest of a record
// (one comes whole, as a rule).
const readAheadWait = 2 * time.Millisecond

// readAhead reads what a TLS client sent while the proxy waits for the
// instance, which the socket shows only as bytes: a close_notify (an
// orderly leave, its FIN showing only once the alert is read: gone) or
// its next request, kept in pre to be read first (not gone). A record not
// yet whole is left for the next look. Called with br empty (or lent)
// and pre empty, on the goroutine that owns the connection's reads.
func (c *conn) readAhead() (gone bool) {
	var buf [512]byte
	c.setReadDeadline(time.Now().Add(readAheadWait))
	n, err := c.nc.Read(buf[:])
	if n > 0 {
		// The rest, if any, waits in the tls.Conn, read after pre.
		c.pre = &prefixed{pre: append([]byte(nil), buf[:n]...), r: c.nc}
		return false
	}
	return err != nil && !isTimeout(err)
}

// clientSent reports, without blocking, whether bytes from the client wait
// to be read: in pre (read ahead over TLS, or passed with the connection),
// or in the socket (for TLS, a record): a request on its way.
func (c *conn) clientSent() bool {
	if c.pre != nil && len(c.pre.pre) > 0 {
		return true
	}
	st, ok := c.peekClient()
	return ok && st == sockpeek.Data
}

// peekClient looks at what waits in the client's socket (for TLS, in the
// TCP connection under it: a close_notify is data, only a close or reset
// counts as closed), without blocking and whatever its read deadline:
// through Control, not Read, since a deadline in the past (a parked
// connection's, a stream's that began on an idle one) fails a Read at
// once. ok is false when the socket cannot be looked at.
func (c *conn) peekClient() (st sockpeek.State, ok bool) {
	ok = c.onSocket(func(fd uintptr) { st = sockpeek.FD(fd) })
	return st, ok
}

// onSocket runs f on the descriptor of the client's TCP socket (through
// Control: whatever its deadlines), and reports whether it could.
func (c *conn) onSocket(f func(fd uintptr)) bool {
	raw := c.socket()
	return raw != nil && raw.Control(f) == nil
}

// socket is the client's TCP socket (for TLS, the connection under it),
// for looking at it (peekClient), watching it (park.go, tunnel.go); nil if
// it has none. Made once a connection: SyscallConn allocates.
func (c *conn) socket() syscall.RawConn {
	if c.raw != nil {
		return c.raw
	}
	var nc net.Conn = c.nc
	if tc, isTLS := nc.(*tls.Conn); isTLS {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	c.raw = raw
	return raw
}
