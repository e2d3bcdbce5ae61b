package loadclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// demoLike serves /, /slow, /echo and /stream as examples/demo does, naming
// pid.
func demoLike(pid string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from demo pid=%s port=1 version=1\n", pid)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slow %dms pid=%s\n", ms, pid)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Write(body)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		lines, _ := strconv.Atoi(r.URL.Query().Get("lines"))
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		for i := 1; i <= lines; i++ {
			if i > 1 {
				time.Sleep(time.Duration(ms) * time.Millisecond)
			}
			fmt.Fprintf(w, "stream line=%d/%d pid=%s\n", i, lines, pid)
			w.(http.Flusher).Flush()
		}
	})
	return mux
}

// startHTTP serves h on 127.0.0.1:0 and returns its address and a count of
// the connections it accepted.
func startHTTP(t *testing.T, h http.Handler) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	return ln.Addr().String(), &conns
}

// startRaw accepts connections on 127.0.0.1:0 and hands each to serve, for
// responses net/http would not send. Every conn is closed when the test ends.
func startRaw(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { defer c.Close(); serve(c, bufio.NewReader(c)) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readRequest reads one request with its body; false when the conn is done.
func readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err == nil
}

func checkCounts(t *testing.T, res *Result, total, ok, failed int64) {
	t.Helper()
	if res.Total != total || res.OK != ok || res.Failed != failed {
		t.Fatalf("got %v; want total=%d ok=%d failed=%d; failures:\n%s",
			res, total, ok, failed, strings.Join(res.Failures, "\n"))
	}
}

func TestAllOK(t *testing.T) {
	addr, conns := startHTTP(t, demoLike("4242"))
	res := Run(t.Context(), Config{Addr: addr, Conns: 4, Mix: []Kind{Get, Slow, Post, Stream}, Count: 300, SlowMS: 5, StreamMS: 1, Seed: 1})
	checkCounts(t, res, 300, 300, 0)
	if err := res.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
	var sum int64
	for k := range numKinds {
		c := res.ByKind[k]
		if c.Total == 0 || c.OK != c.Total {
			t.Errorf("%v: %+v, want some, all OK", k, c)
		}
		sum += c.Total
	}
	if sum != 300 {
		t.Errorf("kinds add up to %d, want 300", sum)
	}
	wantPids := res.ByKind[Get].OK + res.ByKind[Slow].OK + res.ByKind[Stream].OK
	if len(res.Pids) != 1 || res.Pids["4242"] != wantPids {
		t.Errorf("Pids = %v, want map[4242:%d]", res.Pids, wantPids)
	}
	if res.Reconnects != 0 || conns.Load() != 4 {
		t.Errorf("reconnects=%d, server saw %d conns; want 0 and 4 persistent conns", res.Reconnects, conns.Load())
	}
	want := fmt.Sprintf("requests=300 ok=300 failed=0 reconnects=0 (get=%d slow=%d post=%d stream=%d)",
		res.ByKind[Get].Total, res.ByKind[Slow].Total, res.ByKind[Post].Total, res.ByKind[Stream].Total)
	if res.String() != want {
		t.Errorf("String() = %q, want %q", res.String(), want)
	}
}

// TestStopJudgesInFlight: Stop waits for the requests in flight and counts
// them, rather than dropping them from the books.
func TestStopJudgesInFlight(t *testing.T) {
	var started atomic.Int64
	allStarted := make(chan struct{})
	addr, _ := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if started.Add(1) == 3 {
			close(allStarted)
		}
		demoLike("7").ServeHTTP(w, r)
	}))
	r := Start(t.Context(), Config{Addr: addr, Conns: 3, Mix: []Kind{Slow}, SlowMS: 300})
	select {
	case <-allStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("3 requests did not reach the server within 10s")
	}
	res := r.Stop()
	checkCounts(t, res, 3, 3, 0)
	select {
	case <-r.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if again := r.Stop(); again != res {
		t.Error("second Stop returned a different result")
	}
}

func TestDurationAndEmptyRun(t *testing.T) {
	addr, _ := startHTTP(t, demoLike("7"))
	res := Run(t.Context(), Config{Addr: addr, Duration: 100 * time.Millisecond})
	if res.Failed != 0 || res.Total == 0 || res.Elapsed < 100*time.Millisecond || res.Elapsed > 5*time.Second {
		t.Errorf("100ms run: %v in %v", res, res.Elapsed)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Run(ctx, Config{Addr: addr}).Err(); err == nil {
		t.Error("Err() of a run that sent nothing is nil; want an error")
	}
}

func TestConnectionCloseIsNotAFailure(t *testing.T) {
	addr, conns := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		demoLike("9").ServeHTTP(w, r)
	}))
	res := Run(t.Context(), Config{Addr: addr, Mix: []Kind{Get, Post}, Count: 20})
	checkCounts(t, res, 20, 20, 0)
	if res.Reconnects != 19 || conns.Load() != 20 {
		t.Errorf("reconnects=%d, server saw %d conns; want 19 and 20", res.Reconnects, conns.Load())
	}
}

// TestNoRetry: a server that closes a keep-alive conn without answering the
// request on it (what a stale pooled conn looks like) costs one failed
// request each time; a client that retried would report none.
func TestNoRetry(t *testing.T) {
	addr := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for range 2 {
			if !readRequest(br) {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\nhello from demo pid=1")
		}
	})
	res := Run(t.Context(), Config{Addr: addr, Count: 9})
	checkCounts(t, res, 9, 6, 3)
	if res.Reconnects != 2 {
		t.Errorf("reconnects=%d, want 2", res.Reconnects)
	}
	// The error is EOF or a reset, as the close races the next request.
	if !strings.HasPrefix(res.Failures[0], "get conn=0 at ") {
		t.Errorf("failure %q, want it to start with kind, conn and time", res.Failures[0])
	}
}

func TestFailuresCounted(t *testing.T) {
	handler := func(f func(w http.ResponseWriter, r *http.Request)) func(*testing.T) string {
		return func(t *testing.T) string { addr, _ := startHTTP(t, http.HandlerFunc(f)); return addr }
	}
	raw := func(resp string) func(*testing.T) string {
		return func(t *testing.T) string {
			return startRaw(t, func(c net.Conn, br *bufio.Reader) {
				if readRequest(br) {
					io.WriteString(c, resp)
				}
			})
		}
	}
	tests := []struct {
		name    string
		server  func(*testing.T) string
		mix     []Kind
		timeout time.Duration
		want    string // in every failure
	}{
		{"status 500", handler(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "hello from demo pid=1 but broken", 500)
		}), nil, 0, `status 500, body "hello from demo pid=1 but broken\n"`},
		{"status 404", handler(http.NotFound), []Kind{Slow}, 0, "status 404"},
		{"wrong get body", handler(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello from elsewhere")
		}), nil, 0, `want "hello from demo..."`},
		{"wrong slow body", handler(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "slow 299ms pid=1")
		}), []Kind{Slow}, 0, `want "slow 5ms..."`},
		{"echo altered", handler(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Write(append(body, '!'))
		}), []Kind{Post}, 0, "echo of"},
		{"stream line missing", handler(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "stream line=1/3 pid=1\nstream line=3/3 pid=1\n")
		}), []Kind{Stream}, 0, `line 2 is "stream line=3/3 pid=1", want "stream line=2/3 pid=1\n"`},
		{"stream cut short", handler(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "stream line=1/3 pid=1\nstream line=2/3 pid=1\nstream line=3/3 pid=1")
		}), []Kind{Stream}, 0, "line 3 is \"stream line=3/3 pid=1\", want \"stream line=3/3 pid=1\\n\" (the body ends there)"},
		{"stream from two pids", handler(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "stream line=1/3 pid=1\nstream line=2/3 pid=2\nstream line=3/3 pid=1\n")
		}), []Kind{Stream}, 0, `line 2 is "stream line=2/3 pid=2"`},
		{"stream with more", handler(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "stream line=1/3 pid=1\nstream line=2/3 pid=1\nstream line=3/3 pid=1\nmore\n")
		}), []Kind{Stream}, 0, `5 more bytes after the last line: "more\n"`},
		{"stream without pid", handler(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "stream line=1/3\n")
		}), []Kind{Stream}, 0, "no pid in"},
		{"closed before response", raw(""), nil, 0, "connection closed before a response: EOF"},
		{"closed mid-header", raw("HTTP/1.1 200 OK\r\nContent-Le"), nil, 0, "headers of 200 response: "},
		{"closed before blank line", raw("HTTP/1.1 200 OK\r\nContent-Length: 21\r\n"), nil, 0, "headers of 200 response: unexpected EOF"},
		{"closed mid-body", raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello from"), nil, 0,
			"got 10 of 100 bytes: unexpected EOF"},
		{"closed mid-chunk", raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n15\r\nhello from"), nil, 0,
			"unexpected EOF"},
		{"closed before last chunk", raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), nil, 0,
			"unexpected EOF"},
		{"malformed status", raw("HTTP/1.1 OK\r\n\r\n"), nil, 0, "malformed status line"},
		{"no response in time", func(t *testing.T) string {
			return startRaw(t, func(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
		}, []Kind{Post}, 100 * time.Millisecond, "no full response within the 100ms timeout"},
		{"nothing listening", func(t *testing.T) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln.Close()
			return ln.Addr().String()
		}, nil, 0, "dial: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.server(t)
			res := Run(t.Context(), Config{Addr: addr, Conns: 2, Mix: tt.mix, Count: 6, SlowMS: 5, PostMaxBytes: 1000, StreamLines: 3, Timeout: tt.timeout})
			checkCounts(t, res, 6, 0, 6)
			if len(res.Failures) != 6 {
				t.Fatalf("%d failures kept, want 6", len(res.Failures))
			}
			for _, f := range res.Failures {
				if !strings.Contains(f, tt.want) {
					t.Errorf("failure %q does not say %q", f, tt.want)
				}
			}
			if res.Err() == nil {
				t.Error("Err() = nil despite failures")
			}
		})
	}
}

// TestOddButValidResponses: framings a server may use that must all pass.
func TestOddButValidResponses(t *testing.T) {
	tests := []struct {
		name, resp string
		closeAfter bool // the response says the conn ends after it
	}{
		{"chunked, extension, trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"6;ext=1\r\nhello \r\nE\r\nfrom demo pid=\r\n2\r\n12\r\n0\r\nX-Trailer: 1\r\n\r\n", false},
		{"100 Continue first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 21\r\n\r\nhello from demo pid=5", false},
		{"HTTP/1.0, body to EOF", "HTTP/1.0 200 OK\r\n\r\nhello from demo pid=5", true},
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 21\r\n\r\nhello from demo pid=5", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns atomic.Int64
			addr := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				conns.Add(1)
				for readRequest(br) {
					io.WriteString(c, tt.resp)
					if tt.closeAfter {
						return
					}
				}
			})
			res := Run(t.Context(), Config{Addr: addr, Count: 3})
			checkCounts(t, res, 3, 3, 0)
			if res.Pids["12"]+res.Pids["5"] != 3 {
				t.Errorf("Pids = %v, want 3 responses counted", res.Pids)
			}
			wantConns := int64(1)
			if tt.closeAfter {
				wantConns = 3
			}
			if got := conns.Load(); got != wantConns || res.Reconnects != wantConns-1 {
				t.Errorf("server saw %d conns, client reconnected %d times; want %d and %d", got, res.Reconnects, wantConns, wantConns-1)
			}
		})
	}
	// Chunked bodies from net/http, flushed in pieces, on a kept-alive conn.
	addr, conns := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/" {
			body = []byte("hello from demo pid=3")
		}
		for len(body) > 0 {
			n := min(len(body), 700)
			w.Write(body[:n])
			w.(http.Flusher).Flush()
			body = body[n:]
		}
	}))
	res := Run(t.Context(), Config{Addr: addr, Mix: []Kind{Get, Post}, Count: 50, PostMaxBytes: 5000})
	checkCounts(t, res, 50, 50, 0)
	if conns.Load() != 1 {
		t.Errorf("server saw %d conns, want 1", conns.Load())
	}
}

// TestStreamIsReadAsItComes: a Stream whose lines come 30 ms apart, each in
// its own chunk, on a kept-alive connection, with another service's Hello.
func TestStreamIsReadAsItComes(t *testing.T) {
	addr, conns := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			io.WriteString(w, "hello from node pid=8")
			return
		}
		demoLike("8").ServeHTTP(w, r)
	}))
	res := Run(t.Context(), Config{Addr: addr, Hello: "hello from node", Conns: 2, Mix: []Kind{Get, Stream}, Count: 10, StreamLines: 4, Seed: 2})
	checkCounts(t, res, 10, 10, 0)
	if res.ByKind[Stream].OK == 0 || res.ByKind[Get].OK == 0 {
		t.Errorf("%v: want both kinds sent", res)
	}
	if res.Pids["8"] != 10 || conns.Load() != 2 {
		t.Errorf("Pids = %v, server saw %d conns; want map[8:10] and 2", res.Pids, conns.Load())
	}
	if least := 3 * 30 * time.Millisecond; res.MaxLatency < least {
		t.Errorf("slowest request %v; a Stream of 4 lines 30 ms apart takes at least %v", res.MaxLatency, least)
	}
	// The demo's Hello is the default: another service's is a failure.
	res = Run(t.Context(), Config{Addr: addr, Count: 2})
	checkCounts(t, res, 2, 0, 2)
	if !strings.Contains(res.Failures[0], `want "hello from demo..."`) {
		t.Errorf("failure %q, want it to name the Hello expected", res.Failures[0])
	}
}

// idleClosingServer serves demo answers on a loopback address it returns,
// and closes connections idle for 20 ms.
func idleClosingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: demoLike("5"), IdleTimeout: 20 * time.Millisecond}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	return ln.Addr().String()
}

// TestPauseMeetsIdleTimeout: with Pause, connections sit idle between
// requests, long enough for a server that closes idle connections after
// 20 ms to do so; the request sent on such a connection fails, as it would
// through a proxy that passed the close on, and is not retried.
func TestPauseMeetsIdleTimeout(t *testing.T) {
	addr := idleClosingServer(t)

	res := Run(t.Context(), Config{Addr: addr, Pause: 100 * time.Millisecond, Count: 12, Seed: 3})
	t.Logf("%v in %v", res, res.Elapsed)
	if res.Total != 12 || res.OK == 0 || res.Failed == 0 || res.OK+res.Failed != 12 {
		t.Errorf("%v; want 12 requests, some failed on a connection the server closed while idle, the next OK on a new one", res)
	}
	if res.Elapsed < 100*time.Millisecond {
		t.Errorf("12 requests with pauses of 0..100ms took %v", res.Elapsed)
	}
}

// TestPauseFromIsTheShortestPause: with PauseFrom every pause is at least
// that long, so against a server that closes connections idle for 20 ms
// every request after a connection's first fails, each on a kept
// connection, and the next goes on a new one.
func TestPauseFromIsTheShortestPause(t *testing.T) {
	addr := idleClosingServer(t)

	res := Run(t.Context(), Config{Addr: addr, PauseFrom: 80 * time.Millisecond, Pause: 100 * time.Millisecond, Count: 8, Seed: 3})
	t.Logf("%v in %v", res, res.Elapsed)
	// One connection: OK, then failed and OK by turns (a failure's
	// connection is replaced before the next request).
	if res.Total != 8 || res.OK != 4 || res.Failed != 4 {
		t.Errorf("%v; want 8 requests, 4 failed on the connection the server closed in each pause", res)
	}
	if res.Elapsed < 7*80*time.Millisecond {
		t.Errorf("8 requests with pauses of 80..100ms took %v", res.Elapsed)
	}
	defer func() {
		if recover() == nil {
			t.Error("PauseFrom over Pause: no panic")
		}
	}()
	Run(t.Context(), Config{Addr: addr, PauseFrom: time.Second, Pause: time.Millisecond, Count: 1})
}

// TestTLS: with Config.TLS each connection is TLS, verified, with ALPN
// http/1.1; the caller's config is left as it was; a session cache makes
// the reconnections after "Connection: close" resume. Without the server's
// root, each handshake fails its request, and only it.
func TestTLS(t *testing.T) {
	var served atomic.Int64
	var mu sync.Mutex
	protos := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos[r.Proto+" "+r.TLS.NegotiatedProtocol]++
		mu.Unlock()
		if served.Add(1)%10 == 0 {
			w.Header().Set("Connection", "close")
		}
		demoLike("4").ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes below
	srv.StartTLS()                                   // HTTP/1.1 only: EnableHTTP2 is false
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	cfg := &tls.Config{RootCAs: roots, ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	addr := srv.Listener.Addr().String()

	res := Run(t.Context(), Config{Addr: addr, TLS: cfg, Conns: 2, Mix: []Kind{Get, Slow, Post, Stream},
		Count: 100, SlowMS: 5, StreamMS: 1, Seed: 4})
	t.Logf("%v; handshakes=%d resumed=%d", res, res.Handshakes, res.Resumed)
	checkCounts(t, res, 100, 100, 0)
	if want := map[string]int{"HTTP/1.1 http/1.1": 100}; fmt.Sprint(protos) != fmt.Sprint(want) {
		t.Errorf("the server saw %v, want %v: ALPN http/1.1 on every request", protos, want)
	}
	// Every 10th response closes its conn; the next request reconnects,
	// but for the 100th's.
	if res.Reconnects != 9 || res.Handshakes != 11 {
		t.Errorf("reconnects=%d handshakes=%d, want 9 and 11 (one per conn, one per Connection: close)", res.Reconnects, res.Handshakes)
	}
	if res.Resumed == 0 || res.Resumed >= res.Handshakes {
		t.Errorf("resumed=%d of %d handshakes, want some, never the first: the cache fills after it", res.Resumed, res.Handshakes)
	}
	if cfg.NextProtos != nil || cfg.ServerName != "" {
		t.Errorf("the caller's tls.Config was changed: NextProtos %q, ServerName %q", cfg.NextProtos, cfg.ServerName)
	}

	res = Run(t.Context(), Config{Addr: addr, TLS: &tls.Config{}, Conns: 2, Count: 4})
	checkCounts(t, res, 4, 0, 4)
	for _, f := range res.Failures {
		if !strings.Contains(f, "dial: TLS handshake: ") || !strings.Contains(f, "x509") {
			t.Errorf("failure %q, want a TLS handshake failing on the unknown certificate", f)
		}
	}
	if res.Handshakes != 0 {
		t.Errorf("handshakes=%d after failed ones, want 0", res.Handshakes)
	}
}
