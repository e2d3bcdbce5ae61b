package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"smoothserve/internal/sockconn"
	"smoothserve/internal/tcptest"
	"smoothserve/upstream"
)

// instance is an in-process HTTP server on 127.0.0.1:0 standing in for a
// service instance.
type instance struct {
	name string
	ln   net.Listener
	srv  *http.Server
	hits atomic.Int64
}

func startInstance(t *testing.T, name string, h http.HandlerFunc) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{name: name, ln: ln}
	in.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
	})}
	go in.srv.Serve(ln)
	t.Cleanup(func() { in.srv.Close() })
	return in
}

func (in *instance) addr() string { return in.ln.Addr().String() }

type fixture struct {
	srv  *Server
	addr string
	port int
}

// startProxy serves routes on a proxy listener of port 1 (a label: the
// listener itself is on 127.0.0.1:0), for tests and fuzz targets alike,
// until the test ends.
func startProxy(tb testing.TB, opts Options, rs ...Route) *fixture {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(opts, rs)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln, 1)
	}()
	tb.Cleanup(func() {
		s.Close()
		<-done
	})
	return &fixture{srv: s, addr: ln.Addr().String(), port: 1}
}

func setOf(t *testing.T, name string, ins ...*instance) *upstream.Set {
	t.Helper()
	set := upstream.NewSet(name, time.Second)
	for i, in := range ins {
		set.Add(upstream.NewBackend(name, i, in.addr()))
	}
	return set
}

// client is a raw keep-alive HTTP/1.1 client: no retries, no pooling.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	rc := dialRaw(t, addr)
	return &client{t: t, c: rc.c, br: rc.br}
}

func (cl *client) do(raw string) (*http.Response, string, error) {
	if _, err := io.WriteString(cl.c, raw); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

func (cl *client) mustDo(raw string) (*http.Response, string) {
	cl.t.Helper()
	resp, body, err := cl.do(raw)
	if err != nil {
		cl.t.Fatalf("request %q: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
	}
	return resp, body
}

func get(host, path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
}

func TestRoutesByHostOnOnePort(t *testing.T) {
	a := startInstance(t, "a", nil)
	b := startInstance(t, "b", nil)
	w := startInstance(t, "w", nil)
	f := startProxy(t, Options{},
		Route{Port: 1, Hosts: []string{"a.test", "alias.test"}, Set: setOf(t, "a", a)},
		Route{Port: 1, Hosts: []string{"b.test"}, Set: setOf(t, "b", b)},
		Route{Port: 1, Hosts: []string{"*.wild.test"}, Set: setOf(t, "w", w)},
	)
	cl := dial(t, f.addr)
	tests := []struct {
		host, want string
		status     int
	}{
		{"a.test", "a GET /x", 200},
		{"A.TEST:8085", "a GET /x", 200},
		{"alias.test", "a GET /x", 200},
		{"b.test", "b GET /x", 200},
		{"x.wild.test", "w GET /x", 200},
		{"deep.x.wild.test", "w GET /x", 200},
		{"wild.test", "", 404},
		{"other.test", "", 404},
	}
	for _, tt := range tests {
		resp, body := cl.mustDo(get(tt.host, "/x"))
		if resp.StatusCode != tt.status {
			t.Errorf("Host %s: status %d, want %d (%s)", tt.host, resp.StatusCode, tt.status, body)
			continue
		}
		if tt.status == 200 && body != tt.want {
			t.Errorf("Host %s: body %q, want %q", tt.host, body, tt.want)
		}
		if tt.status == 404 && (body != "Not Found\n" || resp.Header.Get("X-Request-Id") == "") {
			t.Errorf("Host %s: 404 body %q, X-Request-Id %q; want a fixed text naming nothing of the request, and an id",
				tt.host, body, resp.Header.Get("X-Request-Id"))
		}
	}
}

func TestSingleServiceTakesEveryHost(t *testing.T) {
	a := startInstance(t, "a", nil)
	f := startProxy(t, Options{}, Route{Port: 1, Hosts: []string{"a.test"}, Set: setOf(t, "a", a)})
	resp, body := dial(t, f.addr).mustDo(get("anything.example", "/"))
	if resp.StatusCode != 200 || body != "a GET /" {
		t.Fatalf("got %d %q, want 200 from a", resp.StatusCode, body)
	}
}

func TestLeastInflightAndTurns(t *testing.T) {
	var ins []*instance
	for i := 0; i < 3; i++ {
		ins = append(ins, startInstance(t, fmt.Sprint(i), nil))
	}
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", ins...)})
	cl := dial(t, f.addr)
	for i := 0; i < 30; i++ {
		cl.mustDo(get("x", "/"))
	}
	for _, in := range ins {
		if got := in.hits.Load(); got != 10 {
			t.Errorf("instance %s served %d of 30 sequential requests, want 10 (turns among equals)", in.name, got)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s|xfh=%s|xfp=%s|conn=%s|ka=%s|custom=%s|host=%s|te=%s",
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("Connection"), r.Header.Get("Keep-Alive"), r.Header.Get("X-Custom"), r.Host, r.Header.Get("Te"))
	}
	in := startInstance(t, "a", echo)
	req := "GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\n" +
		"Connection: keep-alive, X-Custom\r\nKeep-Alive: timeout=5\r\nX-Custom: secret\r\nTE: trailers\r\n\r\n"

	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "a", in)})
	_, body := dial(t, f.addr).mustDo(req)
	want := "xff=127.0.0.1|xfh=a.test|xfp=http|conn=|ka=|custom=|host=a.test|te="
	if body != want {
		t.Errorf("untrusted client:\n got %s\nwant %s", body, want)
	}

	trusted := startProxy(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Route{Port: 1, Set: setOf(t, "a", in)})
	_, body = dial(t, trusted.addr).mustDo(req)
	want = "xff=6.6.6.6, 127.0.0.1|xfh=evil|xfp=https|conn=|ka=|custom=|host=a.test|te="
	if body != want {
		t.Errorf("trusted proxy:\n got %s\nwant %s", body, want)
	}
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Len", fmt.Sprint(len(b)))
	w.Write(b)
}

func TestBodies(t *testing.T) {
	in := startInstance(t, "a", echoHandler)
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "a", in)})
	cl := dial(t, f.addr)
	for _, n := range []int{0, 1, 1000, maxKeptBody, maxKeptBody + 1, 1 << 20} {
		body := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		resp, got := cl.mustDo(fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", n, body))
		if resp.StatusCode != 200 || got != string(body) {
			t.Errorf("POST %d bytes: status %d, echoed %d bytes", n, resp.StatusCode, len(got))
		}
		// the same, chunked, in pieces
		var sb strings.Builder
		fmt.Fprintf(&sb, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
		for rest := body; len(rest) > 0; {
			k := min(len(rest), 7000)
			fmt.Fprintf(&sb, "%x;ext=1\r\n%s\r\n", k, rest[:k])
			rest = rest[k:]
		}
		sb.WriteString("0\r\nX-Trailer: 1\r\n\r\n")
		resp, got = cl.mustDo(sb.String())
		if resp.StatusCode != 200 || got != string(body) {
			t.Errorf("chunked POST %d bytes: status %d, echoed %d bytes", n, resp.StatusCode, len(got))
		}
	}
	// Expect: 100-continue is answered by the proxy.
	io.WriteString(cl.c, "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 100 {
		t.Fatalf("Expect: 100-continue: got %v %v, want 100 Continue before the body", resp, err)
	}
	resp, got := cl.mustDo("hello")
	if resp.StatusCode != 200 || got != "hello" {
		t.Errorf("Expect: 100-continue: %d %q", resp.StatusCode, got)
	}
}

func TestChunkedAndStreamedResponses(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "a", in)})
	cl := dial(t, f.addr)
	for i := 0; i < 2; i++ {
		resp, body := cl.mustDo(get("a", "/"))
		if resp.StatusCode != 200 || body != "line 0\nline 1\nline 2\n" || len(resp.TransferEncoding) == 0 {
			t.Fatalf("chunked response: %d %q te=%v", resp.StatusCode, body, resp.TransferEncoding)
		}
	}
	// HTTP/1.0 client: de-chunked, then closed.
	resp, body := dial(t, f.addr).mustDo("GET / HTTP/1.0\r\n\r\n")
	if resp.StatusCode != 200 || body != "line 0\nline 1\nline 2\n" || !resp.Close {
		t.Fatalf("HTTP/1.0 client: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
}

func TestBadRequests(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{MaxHeaderBytes: 4096}, Route{Port: 1, Set: setOf(t, "a", in)})
	tests := []struct {
		name, raw string
		status    int
	}{
		{"huge head", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 5000) + "\r\n\r\n", 431},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"folded header", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400},
		{"gzip coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"http/2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"bad chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
	}
	for _, tt := range tests {
		resp, body, err := dial(t, f.addr).do(tt.raw)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if resp.StatusCode != tt.status || !resp.Close {
			t.Errorf("%s: got %d close=%v (%s), want %d and close", tt.name, resp.StatusCode, resp.Close, body, tt.status)
		}
	}
	if n := in.hits.Load(); n != 0 {
		t.Errorf("the instance saw %d bad requests, want 0", n)
	}
}

func TestDeadInstanceIsSkipped(t *testing.T) {
	live := startInstance(t, "live", nil)
	dead := startInstance(t, "dead", nil)
	set := upstream.NewSet("s", time.Second)
	set.Add(upstream.NewBackend("s", 0, dead.addr()))
	set.Add(upstream.NewBackend("s", 1, live.addr()))
	// Refuses connections from now on. The listener itself is closed:
	// srv.Close alone leaves it open (its backlog completing connects)
	// until the goroutine in Serve has started, if it has not.
	dead.srv.Close()
	dead.ln.Close()
	f := startProxy(t, Options{}, Route{Port: 1, Set: set})
	cl := dial(t, f.addr)
	for i := 0; i < 10; i++ {
		resp, body := cl.mustDo("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
		if resp.StatusCode != 200 || body != "live POST /p" {
			t.Fatalf("request %d: %d %q, want 200 from live (connect failures go elsewhere, any method)", i, resp.StatusCode, body)
		}
	}
}

// dieOnce answers nothing and closes the connection the first time: an
// instance dying before its response began.
func dieOnce(name string) http.HandlerFunc {
	var died atomic.Bool
	return func(w http.ResponseWriter, r *http.Request) {
		if died.CompareAndSwap(false, true) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		fmt.Fprintf(w, "%s %s", name, r.Method)
	}
}

func TestRetryBeforeResponse(t *testing.T) {
	for _, tt := range []struct {
		raw     string
		want502 int
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0},
		{"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 0},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 1},
	} {
		a := startInstance(t, "a", dieOnce("a"))
		b := startInstance(t, "b", nil)
		f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", a, b)})
		got502 := 0
		// Two requests, so that one of them is sent to a first.
		for i := 0; i < 2; i++ {
			resp, body := dial(t, f.addr).mustDo(tt.raw)
			switch resp.StatusCode {
			case 200:
			case 502:
				got502++
			default:
				t.Errorf("%s: got %d %q", strings.Fields(tt.raw)[0], resp.StatusCode, body)
			}
		}
		if a.hits.Load() == 0 {
			t.Fatalf("%s: the dying instance was never tried", strings.Fields(tt.raw)[0])
		}
		if got502 != tt.want502 {
			t.Errorf("%s: %d answers were 502, want %d", strings.Fields(tt.raw)[0], got502, tt.want502)
		}
	}
}

func TestNoInstanceWaitsThen503(t *testing.T) {
	set := upstream.NewSet("s", 300*time.Millisecond)
	f := startProxy(t, Options{}, Route{Port: 1, Set: set})
	start := time.Now()
	resp, body := dial(t, f.addr).mustDo(get("x", "/"))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %q (Retry-After %q), want 503 with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("503 after %v, want a wait of the start timeout (300ms)", d)
	}

	// An instance that becomes ready while the request waits serves it.
	set.SetStartTimeout(5 * time.Second)
	in := startInstance(t, "late", nil)
	go func() {
		time.Sleep(200 * time.Millisecond)
		set.Add(upstream.NewBackend("s", 0, in.addr()))
	}()
	resp, body = dial(t, f.addr).mustDo(get("x", "/"))
	if resp.StatusCode != 200 || body != "late GET /" {
		t.Fatalf("got %d %q, want the late instance's answer", resp.StatusCode, body)
	}

	set.SetStopped(true)
	start = time.Now()
	resp, _ = dial(t, f.addr).mustDo(get("x", "/"))
	// At once: not after the 5 s start timeout (the bound leaves a loaded
	// machine its time for the round trip).
	if resp.StatusCode != 503 || time.Since(start) > 2*time.Second {
		t.Fatalf("stopped service: %d after %v, want 503 at once", resp.StatusCode, time.Since(start))
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	in := startInstance(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", 400)
			return
		}
		conn, brw, _ := w.(http.Hijacker).Hijack()
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo:" + line)
		brw.Flush()
	})
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "ws", in)})
	cl := dial(t, f.addr)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(cl.c, "ping\n")
	line, err := cl.br.ReadString('\n')
	if err != nil || line != "echo:ping\n" {
		t.Fatalf("through the tunnel: %q %v", line, err)
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	// The slow requests are answered when the test says: all five are in
	// flight when Shutdown begins, and they outlast its grace, however
	// fast or slow the machine.
	slow, answer := context.WithCancel(context.Background())
	t.Cleanup(answer)
	in := startInstance(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-slow.Done()
		}
		io.WriteString(w, "done")
	})
	f := startProxy(t, Options{ShutdownGrace: 200 * time.Millisecond}, Route{Port: 1, Set: setOf(t, "s", in)})
	idle := dial(t, f.addr)
	idle.mustDo(get("x", "/")) // now idle, kept alive

	var wg sync.WaitGroup
	results := make(chan string, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := dial(t, f.addr)
			resp, body, err := cl.do(get("x", "/slow"))
			if err != nil {
				results <- err.Error()
				return
			}
			results <- fmt.Sprintf("%d %s close=%v", resp.StatusCode, body, resp.Close)
		}()
	}
	waitUntil(t, "the five requests in flight", func() bool { return f.srv.InFlight() == 5 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- f.srv.Shutdown(ctx) }()
	waitUntil(t, "Shutdown begun", f.srv.shutting.Load)
	time.Sleep(300 * time.Millisecond) // past the grace
	answer()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r != "200 done close=true" {
			t.Errorf("in-flight request during shutdown: %s, want 200 done close=true", r)
		}
	}
	if _, err := net.DialTimeout("tcp", f.addr, time.Second); err == nil {
		t.Errorf("proxy still accepts after Shutdown")
	}
	idle.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle.br.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive connection: read %v, want EOF (closed after the grace)", err)
	}
}

func TestRequestDuringShutdownGraceIsAnswered(t *testing.T) {
	in := startInstance(t, "a", nil)
	// A grace a loaded machine's round trip does not outlast; Shutdown
	// returns once the connection has closed after its answer.
	f := startProxy(t, Options{ShutdownGrace: 5 * time.Second}, Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	cl.mustDo(get("x", "/"))
	go f.srv.Shutdown(context.Background())
	waitUntil(t, "Shutdown begun", f.srv.shutting.Load)
	resp, body := cl.mustDo(get("x", "/"))
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("request on an idle connection during the grace: %d %q close=%v, want 200 with close", resp.StatusCode, body, resp.Close)
	}
}

func TestTimeouts(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{HeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Second},
		Route{Port: 1, Set: setOf(t, "a", in)})

	// A head that stalls half-way is cut at HeaderTimeout. (The times are
	// taken before what starts the proxy's timer: a client slow to look
	// at the clock does not see it fire early.)
	cl := dial(t, f.addr)
	start := time.Now()
	io.WriteString(cl.c, "GET / HTTP/1.1\r\nHost: a\r\n")
	if _, err := cl.br.ReadByte(); err == nil {
		t.Fatal("a stalled head got an answer")
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("stalled head closed after %v, want about the 300ms HeaderTimeout", d)
	}

	// A keep-alive connection is kept while it is used, within IdleTimeout
	// of the last request each time, and closed when it idles past it.
	// (IdleTimeout is well above the pauses, which a loaded machine
	// stretches.)
	cl = dial(t, f.addr)
	for i := 0; i < 8; i++ {
		start = time.Now()
		if resp, _ := cl.mustDo(get("a", "/")); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		time.Sleep(150 * time.Millisecond) // 8 × 150ms: past IdleTimeout in all
	}
	if _, err := cl.br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	// IdleTimeout less its renewal's slack (a tenth), from the last request.
	if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle connection closed %v after its last request, want about the 1s IdleTimeout", d)
	}
}

// passTo is a PassFunc that passes connections to srv in this process:
// through duplicates of the descriptors, as another process would get them.
// The instance's address finds its backend in set.
func passTo(srv *Server, passed *atomic.Int64) PassFunc {
	return passToSet(srv, nil, passed)
}

func passToSet(srv *Server, set *upstream.Set, passed *atomic.Int64) PassFunc {
	return func(h *Handover) error {
		// A descriptor of the same socket, made a connection as connpass's
		// receiving end makes it.
		dup := func(sc syscall.Conn) (*sockconn.Conn, error) {
			rc, err := sc.SyscallConn()
			if err != nil {
				return nil, err
			}
			nfd, derr := -1, error(nil)
			if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
				return nil, err
			}
			if derr != nil {
				return nil, derr
			}
			return sockconn.New(nfd)
		}
		got := &Handover{Port: h.Port, Buffered: bytes.Clone(h.Buffered), InstanceAddr: h.InstanceAddr,
			InstanceBuffered: bytes.Clone(h.InstanceBuffered), Stream: bytes.Clone(h.Stream)}
		var err error
		if got.Client, err = dup(h.Client.(syscall.Conn)); err != nil {
			return err
		}
		if h.Instance != nil {
			ic, err := dup(h.Instance)
			if err != nil {
				got.Client.Close()
				return err
			}
			got.Instance = ic
			if set != nil {
				for _, b := range set.Backends() {
					if b.Addr == h.InstanceAddr {
						got.Backend = b
					}
				}
			}
		}
		if err := srv.ServeHandover(got); err != nil {
			got.Client.Close()
			if got.Instance != nil {
				got.Instance.Close()
			}
			return err
		}
		passed.Add(1)
		return nil
	}
}

func TestPassConnectionsPassesThemBetweenRequests(t *testing.T) {
	// The slow requests are answered once PassConnections has begun, when
	// the test says: in flight at the hand-over however slow the machine.
	slowDone, finishSlow := context.WithCancel(context.Background())
	t.Cleanup(finishSlow)
	slow := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				<-slowDone.Done()
			}
			fmt.Fprintf(w, "%s %s", name, r.URL.Path)
		}
	}
	oldIn, newIn := startInstance(t, "old", slow("old")), startInstance(t, "new", slow("new"))
	old := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", oldIn)})
	next := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", newIn)})

	idle := dial(t, old.addr)
	idle.mustDo(get("x", "/"))
	busy := dial(t, old.addr)
	busy.mustDo(get("x", "/"))
	piped := dial(t, old.addr)
	piped.mustDo(get("x", "/"))

	// busy: one slow request in flight; piped: a slow one and, in the same
	// write, the next one, read ahead by the old proxy.
	type answer struct {
		got string
		err error
	}
	busyDone, pipedDone := make(chan answer, 1), make(chan answer, 1)
	go func() {
		resp, body, err := busy.do(get("x", "/slow"))
		if err != nil {
			busyDone <- answer{err: err}
			return
		}
		busyDone <- answer{got: fmt.Sprintf("%d %s close=%v", resp.StatusCode, body, resp.Close)}
	}()
	go func() {
		if _, err := io.WriteString(piped.c, get("x", "/slow")+get("x", "/piped")); err != nil {
			pipedDone <- answer{err: err}
			return
		}
		var got []string
		for range 2 {
			resp, err := http.ReadResponse(piped.br, nil)
			if err != nil {
				pipedDone <- answer{err: err}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = append(got, fmt.Sprintf("%d %s close=%v", resp.StatusCode, body, resp.Close))
		}
		pipedDone <- answer{got: strings.Join(got, "; ")}
	}()
	waitUntil(t, "the slow requests in flight", func() bool { return old.srv.InFlight() == 2 })

	var passed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		// The slow requests end 300 ms into the hand-over.
		for !old.srv.shutting.Load() {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		finishSlow()
	}()
	start := time.Now()
	if err := old.srv.PassConnections(ctx, passTo(next.srv, &passed)); err != nil {
		t.Fatalf("PassConnections: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("PassConnections took %v; the slow requests take 300 ms", took)
	}
	if n := passed.Load(); n != 3 {
		t.Errorf("%d connections passed, want 3", n)
	}

	// The idle connection is served by the new proxy; nothing said close.
	if resp, body := idle.mustDo(get("x", "/after")); resp.StatusCode != 200 || body != "new /after" || resp.Close {
		t.Errorf("idle connection after the hand-over: %d %q close=%v; want 200 \"new /after\", kept open", resp.StatusCode, body, resp.Close)
	}
	// The busy one finished on the old proxy, kept open, then went over.
	if a := <-busyDone; a.err != nil || a.got != "200 old /slow close=false" {
		t.Errorf("request in flight during the hand-over: %q %v; want 200 old /slow close=false", a.got, a.err)
	}
	if resp, body := busy.mustDo(get("x", "/after")); body != "new /after" || resp.Close {
		t.Errorf("busy connection after the hand-over: %q close=%v", body, resp.Close)
	}
	// The request read ahead went with its connection.
	if a := <-pipedDone; a.err != nil || a.got != "200 old /slow close=false; 200 new /piped close=false" {
		t.Errorf("pipelined requests across the hand-over: %q %v", a.got, a.err)
	}
	if resp, body := piped.mustDo(get("x", "/after")); body != "new /after" || resp.Close {
		t.Errorf("pipelined connection after the hand-over: %q close=%v", body, resp.Close)
	}
	if _, err := net.DialTimeout("tcp", old.addr, time.Second); err == nil {
		t.Errorf("the old proxy still accepts after PassConnections")
	}
}

func TestPassConnectionsThatFailsEndsTheConnectionAsShutdownDoes(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{ShutdownGrace: 300 * time.Millisecond}, Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	cl.mustDo(get("x", "/"))
	trying := make(chan struct{})
	go f.srv.PassConnections(context.Background(), func(*Handover) error {
		// Failing takes longer than the grace (a stuck receiver times
		// out): the grace counts from the failure, not from the start.
		close(trying)
		time.Sleep(500 * time.Millisecond)
		return errors.New("the new process is gone")
	})
	// The client sends its next request as the pass is tried (the
	// response before said keep-alive): it waits in the socket, and is
	// read after the failure, past the grace from the start. (Sent after
	// the failure, it would have to come within the grace, which a loaded
	// machine may not do.)
	<-trying
	// The connection stayed: a request within the grace is answered here,
	// and its answer closes the connection.
	resp, body := cl.mustDo(get("x", "/"))
	if resp.StatusCode != 200 || body != "a GET /" || !resp.Close {
		t.Fatalf("request after a failed hand-over: %d %q close=%v, want 200 with close", resp.StatusCode, body, resp.Close)
	}
}

func TestServeConnOfAClientAlreadyGone(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in)})
	c, sc := tcptest.Pair(t)
	// The client leaves before the connection is passed: the passed copy
	// has no peer address.
	c.SetLinger(0)
	c.Close()
	time.Sleep(50 * time.Millisecond)
	file, err := sc.File()
	if err != nil {
		t.Fatal(err)
	}
	sc.Close()
	passed, err := net.FileConn(file)
	file.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.ServeConn(passed, 1, []byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	// It is served (and fails on its own); the proxy goes on.
	cl := dial(t, f.addr)
	if resp, body := cl.mustDo(get("x", "/")); resp.StatusCode != 200 {
		t.Fatalf("after serving a dead passed connection: %d %q", resp.StatusCode, body)
	}
}
