package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"smoothserve/internal/h2raw"
	"smoothserve/internal/procstat"
	"smoothserve/internal/sockpeek"
)

// Memory per idle keep-alive connection: the bench opens N connections to
// a proxy started for the measurement, sends GET / on each, reads the
// answer and leaves the connection open. The proxy's RSS, summed over its
// processes, is read before, right after the last answer and after
// idleWait; (RSS - RSS before) / N is the memory one idle connection
// holds. A Go proxy's RSS also holds garbage until its collector runs:
// that is the memory an operator sees, so it counts.

// idleCounts are the numbers of idle connections measured, in order.
var idleCounts = []int{1000, 10000}

// An idleKind is what the held connections are: keep-alive ones, plain
// or over TLS, quiet WebSockets (a 101 from the demo's /ws echo, one
// message each way, then nothing), or quiet event streams (the demo's
// /events, its first event read, the next a minute away).
type idleKind int

const (
	idlePlain idleKind = iota
	idleTLS
	idleH2
	idleTunnel
	idleStream
)

func (k idleKind) String() string {
	return [...]string{"idle", "idle-tls", "idle-h2", "websocket", "event-stream"}[k]
}

// secure is whether the connections are TLS ones.
func (k idleKind) secure() bool { return k == idleTLS || k == idleH2 }

// once is what is sent and read on each connection before it is held.
func (k idleKind) once() func(net.Conn, string) error {
	switch k {
	case idleTunnel:
		return wsOnce
	case idleStream:
		return streamOnce
	case idleH2:
		return h2Once
	}
	return getOnce
}

// idleWait is how long the connections idle before the RSS is read:
// smoothserve parks a connection idle for a second or two.
const idleWait = 5 * time.Second

// idleParallel is how many connections are opened (and answered) at once:
// few, so that the proxies' pools of upstream connections stay small.
const idleParallel = 64

// idleIOTimeout bounds a connection's dial, request and answer.
const idleIOTimeout = 10 * time.Second

// idlePerSource is how many connections go from one source address: the
// kernel gives a bound socket a port of its own per address, from about
// 28 000 ephemeral ones.
const idlePerSource = 4000

// idleSample is one measurement: a proxy started for it, n connections.
type idleSample struct {
	conns  int   // asked for
	opened int   // answered 200 and held
	before int64 // KiB: RSS of the proxy's processes before
	busy   int64 // KiB: right after the last answer
	idle   int64 // KiB: after idleWait
	// closed are the connections the proxy closed while they idled.
	closed   int
	failed   int
	firstErr string
	fdLimit  int // the proxy's lowest soft limit of open files
}

// perConn is KiB per connection held, at rss.
func (s idleSample) perConn(rss int64) float64 {
	if s.opened == 0 {
		return 0
	}
	return float64(rss-s.before) / float64(s.opened)
}

// idleSources are the source addresses of n connections: 127.0.0.2 and
// on, one per idlePerSource (not 127.0.0.1, whose ports wrk's connections
// left in TIME_WAIT).
func idleSources(n int) []net.IP {
	var ips []net.IP
	for i := 0; i == 0 || i*idlePerSource < n; i++ {
		ips = append(ips, net.IPv4(127, 0, 0, byte(2+i)))
	}
	return ips
}

// sumRSS is the RSS of pids in KiB, summed.
func sumRSS(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		if b, err := procstat.RSS(pid); err == nil {
			sum += b >> 10
		}
	}
	return sum
}

// measureIdle measures one proxy at addr with n idle connections: a
// warm-up of idleParallel connections, one request each (the upstream
// pools filled), then the RSS before, the n connections, the RSS right
// after and after idleWait.
// With tc, the connections are TLS ones, each after a full handshake.
// kind says what they are.
func measureIdle(ctx context.Context, addr string, pids func() []int, n int, tc *tls.Config, kind idleKind) (idleSample, error) {
	s := idleSample{conns: n, fdLimit: noFileLimit(pids())}
	warm, failed, err := openIdleAs(ctx, addr, idleParallel, idleSources(idleParallel), tc, kind)
	closeIdle(warm)
	if err == nil && failed > 0 {
		err = fmt.Errorf("warm-up: %d of %d connections failed", failed, idleParallel)
	}
	if err != nil {
		return s, err
	}
	sleepCtx(ctx, time.Second)
	s.before = sumRSS(pids())
	conns, failed, err := openIdleAs(ctx, addr, n, idleSources(n), tc, kind)
	defer closeIdle(conns)
	if err != nil && ctx.Err() != nil {
		return s, ctx.Err()
	}
	s.opened, s.failed = len(conns), failed
	if err != nil {
		s.firstErr = err.Error()
	}
	s.busy = sumRSS(pids())
	sleepCtx(ctx, idleWait)
	s.idle = sumRSS(pids())
	for _, c := range conns {
		if closedIdle(c) {
			s.closed++
		}
	}
	return s, ctx.Err()
}

// openIdle opens n connections to addr (TLS ones with tc), from srcs in
// turn, sends GET / on each and reads the answer, idleParallel at a time.
// It returns the connections answered 200, how many failed, and the first
// failure.
func openIdle(ctx context.Context, addr string, n int, srcs []net.IP, tc *tls.Config) ([]net.Conn, int, error) {
	return openIdleAs(ctx, addr, n, srcs, tc, idlePlain)
}

// openIdleAs is openIdle, of connections of kind (kind.once instead of
// GET /).
func openIdleAs(ctx context.Context, addr string, n int, srcs []net.IP, tc *tls.Config, kind idleKind) ([]net.Conn, int, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(idleParallel, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				conns[i], errs[i] = openOne(ctx, addr, srcs[i%len(srcs)], tc, kind.once())
			}
		})
	}
	wg.Wait()
	var held []net.Conn
	var failed int
	var first error
	for i, c := range conns {
		switch {
		case c != nil:
			held = append(held, c)
		case errs[i] != nil:
			failed++
			first = cmpErr(first, errs[i])
		}
	}
	if ctx.Err() != nil {
		closeIdle(held)
		return nil, failed, ctx.Err()
	}
	return held, failed, first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// openOne dials addr from src (with tc, a TLS handshake for tc.ServerName)
// and makes it what once makes it: GET / answered, a WebSocket, a stream.
func openOne(ctx context.Context, addr string, src net.IP, tc *tls.Config, once func(net.Conn, string) error) (net.Conn, error) {
	d := net.Dialer{Timeout: idleIOTimeout, LocalAddr: &net.TCPAddr{IP: src}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	host := addr
	if tc != nil {
		t := tls.Client(c, tc)
		hctx, cancel := context.WithTimeout(ctx, idleIOTimeout)
		err := t.HandshakeContext(hctx)
		cancel()
		if err != nil {
			abort(c)
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		c, host = t, tc.ServerName
	}
	if err := once(c, host); err != nil {
		abort(c)
		return nil, err
	}
	return c, nil
}

// getOnce sends GET / on c and reads the answer, which must be a 200 that
// keeps the connection open.
func getOnce(c net.Conn, host string) error {
	c.SetDeadline(time.Now().Add(idleIOTimeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
		return fmt.Errorf("writing GET /: %w", err)
	}
	br := bufio.NewReaderSize(c, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("reading the body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET /: %s", resp.Status)
	case resp.Close:
		return errors.New("GET /: the proxy closes the connection")
	case br.Buffered() > 0:
		return fmt.Errorf("GET /: %d bytes after the answer", br.Buffered())
	}
	return c.SetDeadline(time.Time{})
}

// h2Once sends the HTTP/2 preface and GET / (stream 1) on c, a TLS
// connection whose handshake chose h2, and reads the answer, which must
// be a 200, and both sides' SETTINGS acknowledged (internal/h2raw):
// nothing is left for the proxy to send but what an idle connection gets.
func h2Once(c net.Conn, host string) error {
	c.SetDeadline(time.Now().Add(idleIOTimeout))
	if err := h2raw.Open(c, host); err != nil {
		return fmt.Errorf("GET / over HTTP/2: %w", err)
	}
	return c.SetDeadline(time.Time{})
}

// abort closes c with a reset: no TIME_WAIT left to hold its port (a TLS
// connection's TCP connection, with no close_notify).
func abort(c net.Conn) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func closeIdle(conns []net.Conn) {
	for _, c := range conns {
		abort(c)
	}
}

// closedIdle reports whether the proxy closed c, an idle connection: its
// close, or, over TLS, bytes before it, which an idle connection gets
// otherwise none of: the close_notify alert (and over HTTP/2 the GOAWAY
// before it).
func closedIdle(c net.Conn) bool {
	st := peek(c)
	_, secure := c.(*tls.Conn)
	return st == sockpeek.Closed || secure && st == sockpeek.Data
}

// peek is whether c has data, is quiet or was closed by the other side,
// without reading it.
func peek(c net.Conn) sockpeek.State {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return sockpeek.Quiet
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return sockpeek.Closed
	}
	st := sockpeek.Closed
	raw.Control(func(fd uintptr) { st = sockpeek.FD(fd) })
	return st
}

// idleMemory measures each proxy at each of the table's counts, in rounds,
// each time a proxy started for it (so that what the last measurement left
// in a heap does not hide what the next one needs); idleTLS: over TLS, on
// the proxies' TLS ports (HTTP/1.1, TLS 1.3, a full handshake each);
// idleH2: the same, HTTP/2 (h2Once);
// idleTunnel and idleStream: quiet WebSockets and event streams (wsidle.go).
func (b *bench) idleMemory(ctx context.Context, dir string, upstreams map[string][]string, opts proxyOptions, kind idleKind) (*idleTable, error) {
	names := proxyNames()
	t := &idleTable{base: "nginx", kind: kind}
	var tc *tls.Config
	if kind.secure() {
		tc = handshakeConfig(nil)
	}
	if kind == idleH2 {
		tc.NextProtos = []string{"h2"}
	}
	for _, name := range names {
		t.row(name)
	}
	for r := range b.rounds {
		for _, n := range t.counts() {
			for i := range names {
				name := names[(r+i)%len(names)]
				sub := filepath.Join(dir, fmt.Sprintf("%s-%s-%d-r%d", kind, name, n, r+1))
				p, err := b.startFresh(name, sub, upstreams[name], opts)
				if err != nil {
					return t, err
				}
				addr := strings.TrimPrefix(p.url, "http://")
				if kind.secure() {
					addr, err = tlsAddr(p.tlsURL)
				}
				var s idleSample
				if err == nil {
					s, err = measureIdle(ctx, addr, p.pids, n, tc, kind)
				}
				p.stop()
				if err != nil {
					return t, fmt.Errorf("%s, %d %s connections: %w", name, n, kind, err)
				}
				t.row(name).add(s)
				fmt.Fprintf(os.Stderr, "bench: %s %s connections, round %d/%d, %s: %d of %d held, %.2f KiB each after %s idle (%.2f right after the answers), RSS %s before\n",
					elapsed(), kind, r+1, b.rounds, name, s.opened, n, s.perConn(s.idle), idleWait, s.perConn(s.busy), fmtKiB(s.before))
			}
		}
	}
	return t, nil
}
