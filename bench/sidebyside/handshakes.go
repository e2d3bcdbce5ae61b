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
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// New-connection TLS handshakes (issue 20): a client in the bench opens
// connections to each proxy's TLS port, handshakeConns at a time, each
// for one request: a TLS 1.3 handshake, GET /, the answer, and the
// server's close. Full handshakes (no session cache: ECDHE and the
// certificate's ECDSA signature every time), then resumed ones (a session
// cache: the ticket the proxy sent on an earlier connection, a PSK with
// ECDHE, no certificate). h2load cannot do it: it holds each connection
// for many requests and has no control of resumption. The client is Go's
// crypto/tls: its half of each handshake takes the same two cores.

// handshakeConns is how many connections the client has under way at once.
const handshakeConns = 64

// handshakeTimeout bounds one connection: dial, handshake, request, close.
const handshakeTimeout = 5 * time.Second

// A handshakeMode is one handshake table.
type handshakeMode struct {
	title  string
	resume bool // a session cache, primed before the measured run
}

var handshakeModes = []handshakeMode{
	{title: "TLS 1.3 handshakes, full: a new connection for each GET /, 64 at once"},
	{title: "TLS 1.3 handshakes, resumed (session tickets): a new connection for each GET /, 64 at once", resume: true},
}

// handshakeRun is what one run of the client counted, in its duration.
type handshakeRun struct {
	conns, resumed int64 // connections done (their request answered 200)
	// Failed connections: dial, handshake or reading the answer (read),
	// a timeout, a status ≥ 400.
	connect, read, timeout, non2xx int64
	firstErr                       string
	took                           []time.Duration // of each connection done
	d                              time.Duration
}

// result is the run as a wrkResult: a request is a connection.
func (r handshakeRun) result() wrkResult {
	w := wrkResult{requests: r.conns, connect: r.connect, read: r.read, timeout: r.timeout, non2xx: r.non2xx}
	if r.d > 0 {
		w.rps = float64(r.conns) / r.d.Seconds()
	}
	w.p50, w.p99 = percentiles(r.took)
	return w
}

// percentiles are p50 and p99 of ds, 0 if none.
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(int(p*float64(len(s))), len(s)-1)] }
	return at(0.50), at(0.99)
}

func (r *handshakeRun) add(o handshakeRun) {
	r.conns += o.conns
	r.resumed += o.resumed
	r.connect += o.connect
	r.read += o.read
	r.timeout += o.timeout
	r.non2xx += o.non2xx
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
	r.took = append(r.took, o.took...)
}

// handshakeConfig is the client's TLS: 1.3 only, X25519 only (what wrk and
// h2load offer first; Go would offer X25519MLKEM768 too, which Go's
// servers choose and OpenSSL 3.0's cannot), HTTP/1.1, and cache, if any,
// for resumption.
func handshakeConfig(cache tls.ClientSessionCache) *tls.Config {
	return &tls.Config{
		ServerName:         tlsHost,
		InsecureSkipVerify: true, // the bench's self-signed certificate; its signature is still checked
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: cache,
	}
}

// handshakeLoad runs connections to addr (host:port, Host and SNI
// localhost) for d, handshakeConns at a time, each with one request. A
// connection counts if it is done within d; those under way then are let
// finish and not counted.
func handshakeLoad(ctx context.Context, addr string, cfg *tls.Config, d time.Duration) handshakeRun {
	end := time.Now().Add(d)
	runs := make([]handshakeRun, handshakeConns)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			r := &runs[i]
			for ctx.Err() == nil && time.Now().Before(end) {
				start := time.Now()
				resumed, kind, err := handshakeOnce(ctx, addr, cfg)
				if time.Now().After(end) {
					break
				}
				r.count(resumed, kind, err, time.Since(start))
			}
		})
	}
	wg.Wait()
	total := handshakeRun{d: d}
	for _, r := range runs {
		total.add(r)
	}
	return total
}

// count adds one connection's outcome.
func (r *handshakeRun) count(resumed bool, kind string, err error, took time.Duration) {
	if err == nil {
		r.conns++
		if resumed {
			r.resumed++
		}
		r.took = append(r.took, took)
		return
	}
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		r.timeout++
	case kind == "connect":
		r.connect++
	case kind == "non2xx":
		r.non2xx++
	default:
		r.read++
	}
}

// handshakeOnce opens one connection: a handshake, GET /, the answer (a
// 200), and waits for the server to close (Connection: close), so that the
// server keeps the TIME_WAIT and the client's ports stay free. kind says
// what failed: connect, read or non2xx.
func handshakeOnce(ctx context.Context, addr string, cfg *tls.Config) (resumed bool, kind string, err error) {
	d := net.Dialer{Timeout: handshakeTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, "connect", err
	}
	c := tls.Client(raw, cfg)
	defer c.Close()
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.HandshakeContext(ctx); err != nil {
		return false, "read", fmt.Errorf("handshake: %w", err)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+tlsHost+":"+port(addr)+"\r\nConnection: close\r\n\r\n"); err != nil {
		return false, "read", fmt.Errorf("writing GET /: %w", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, "read", fmt.Errorf("reading the answer: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, "read", fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, "non2xx", fmt.Errorf("GET /: %s", resp.Status)
	}
	io.Copy(io.Discard, br) // until the server's close; how it closes does not matter
	return c.ConnectionState().DidResume, "", nil
}

// port is the port of host:port.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// tlsAddr is the address to dial for a proxy's TLS port: benchAddr, not
// localhost, which may resolve to ::1 first.
func tlsAddr(tlsURL string) (string, error) {
	u, err := url.Parse(tlsURL)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(benchAddr, u.Port()), nil
}

// handshakeTables runs the handshake modes against each proxy in turn, in
// rounds, and gives the resumed table each proxy's resumed ÷ full.
func (b *bench) handshakeTables(ctx context.Context, proxies []*proxy) ([]*table, error) {
	var tables []*table
	counts := map[string]*handshakeRun{} // by mode and proxy
	for _, m := range handshakeModes {
		t := &table{title: m.title, command: handshakeCommand(m, b.duration), base: "nginx", client: "Go client",
			extra: []string{"resumed"}}
		if m.resume {
			t.extra = append(t.extra, "req/s ÷ its full")
		}
		t.notes = append(t.notes, handshakeNote, tlsNote(proxies))
		for _, p := range proxies {
			t.row(p.name)
			counts[m.title+"\x00"+p.name] = &handshakeRun{}
		}
		tables = append(tables, t)
	}
	for r := range b.rounds {
		for mi, m := range handshakeModes {
			for i := range proxies {
				p := proxies[(r+i)%len(proxies)]
				run, peak, cpu, err := b.measureHandshakes(ctx, p, m)
				if err != nil {
					return tables, fmt.Errorf("%s, %s: %w", p.name, m.title, err)
				}
				res := run.result()
				tables[mi].row(p.name).add(res, peak)
				tables[mi].addCPU(p.name, cpu)
				counts[m.title+"\x00"+p.name].add(run)
				progress("TLS handshakes", r, b.rounds, fmt.Sprintf("%s, %s (%d resumed)", p.name, onOff(m.resume), run.resumed), res)
			}
		}
	}
	for mi, m := range handshakeModes {
		for _, s := range tables[mi].rows {
			c := counts[m.title+"\x00"+s.name]
			s.extra = map[string]string{"resumed": fmtFraction(c.resumed, c.conns)}
			if c.firstErr != "" {
				s.note("first failure: " + c.firstErr)
			}
			if m.resume {
				s.extra["req/s ÷ its full"] = ratio(s.rps(), tables[0].row(s.name).rps())
			}
		}
	}
	return tables, nil
}

const handshakeNote = "a request is a connection: req/s is handshakes a second; p50 and p99 are a connection's whole time " +
	"(dial, handshake, GET /, answer, the server's close); *resumed* is the part of the connections that resumed a session " +
	"(tls.ConnectionState.DidResume), over all rounds. The client is the bench's own process (Go crypto/tls, X25519, " +
	"TLS 1.3 only): its half of every handshake takes the same two cores, in the CPU table's *Go client* column"

func handshakeCommand(m handshakeMode, d time.Duration) string {
	cache := "ClientSessionCache: nil"
	if m.resume {
		cache = "ClientSessionCache: tls.NewLRUClientSessionCache, primed by one connection"
	}
	return fmt.Sprintf("Go client (bench/sidebyside/handshakes.go): %d goroutines, each: dial 127.0.0.1:PORT, TLS 1.3 (SNI localhost, X25519, %s), "+
		"GET / with Connection: close, read to the server's close; %s", handshakeConns, cache, d)
}

func fmtFraction(n, of int64) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

// measureHandshakes warms up, primes the session cache (resume), then runs
// the client for b.duration, sampling the proxy's peak RSS and, with perf,
// counting the CPU by process over the same time. The bench's own samples
// are the client's here (no loop or probe runs).
func (b *bench) measureHandshakes(ctx context.Context, p *proxy, m handshakeMode) (handshakeRun, int64, cpuCount, error) {
	addr, err := tlsAddr(p.tlsURL)
	if err != nil {
		return handshakeRun{}, 0, cpuCount{}, err
	}
	var cache tls.ClientSessionCache
	if m.resume {
		cache = tls.NewLRUClientSessionCache(16)
	}
	cfg := handshakeConfig(cache)
	if b.warmup > 0 {
		handshakeLoad(ctx, addr, cfg, b.warmup)
	}
	if _, _, err := handshakeOnce(ctx, addr, cfg); err != nil {
		return handshakeRun{}, 0, cpuCount{}, err
	}
	resetHWM(p.pids())
	sampling, stopSampling := context.WithCancel(ctx)
	peak := samplePeak(sampling, p.pids)
	perf := b.perfDuring(ctx, b.duration)
	run := handshakeLoad(ctx, addr, cfg, b.duration)
	stopSampling()
	samples := perf()
	if samples != nil {
		samples["wrk"] += samples["bench"] // the load generator's column
		delete(samples, "bench")
	}
	if run.conns == 0 && ctx.Err() == nil {
		return run, <-peak, cpuCount{}, fmt.Errorf("no connection done: %s", run.firstErr)
	}
	return run, <-peak, cpuCount{samples: samples, requests: run.conns}, ctx.Err()
}

// perfDuring records every CPU for d, from now, if b.perf; the function
// it returns waits for the end and counts the samples by role (nil
// without perf, or if perf failed).
func (b *bench) perfDuring(ctx context.Context, d time.Duration) func() map[string]int64 {
	if !b.perf {
		return func() map[string]int64 { return nil }
	}
	file := filepath.Join(b.dir, "perf-handshakes.data")
	done := make(chan error, 1)
	go func() {
		_, err := runLoad(ctx, append(perfRecord(file), "sleep", fmt.Sprint(int(d/time.Second))), d)
		done <- err
	}()
	return func() map[string]int64 {
		defer os.Remove(file)
		if err := <-done; err != nil {
			fmt.Fprintf(os.Stderr, "bench: CPU by process not counted: %v\n", err)
			return nil
		}
		samples, err := perfReport(ctx, file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: CPU by process not counted: %v\n", err)
			return nil
		}
		return samples
	}
}
