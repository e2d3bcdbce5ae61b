package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/syncbuf"
)

// The tests run the demo as a child process: the test binary itself, which
// runs main's code when DEMO_TEST_HELPER is set. The child is then built with
// the same flags as the test (-race included), which a separate go build
// would not give.
func TestMain(m *testing.M) {
	if os.Getenv("DEMO_TEST_HELPER") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type demoProc struct {
	cmd    *exec.Cmd
	port   int
	stderr *syncbuf.Buffer
	exited chan struct{} // closed when Wait returns
	code   int           // exit code; read after exited is closed
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// spawnDemo starts the demo with args (after -port=port) and extra env. It
// does not wait for it to listen. The child is killed at the end of the test
// if it is still running.
func spawnDemo(t *testing.T, port int, env []string, stdout io.Writer, args ...string) *demoProc {
	t.Helper()
	p := &demoProc{port: port, stderr: &syncbuf.Buffer{}, exited: make(chan struct{})}
	if port != 0 {
		args = append([]string{"-port=" + strconv.Itoa(port)}, args...)
	}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(append(os.Environ(), "DEMO_TEST_HELPER=1"), env...)
	if os.Getenv("GORACE") == "" {
		// A -race child otherwise sleeps 1s at exit.
		p.cmd.Env = append(p.cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	p.cmd.Stdout = stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if err != nil && !errors.As(err, new(*exec.ExitError)) {
			p.code = -1
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// startDemo starts the demo on a free port and waits for its start line.
func startDemo(t *testing.T, env []string, args ...string) *demoProc {
	t.Helper()
	p := spawnDemo(t, freePort(t), env, nil, args...)
	p.waitStderr(t, "listening on", 10*time.Second)
	return p
}

func (p *demoProc) waitStderr(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.exited:
			if strings.Contains(p.stderr.String(), want) {
				return
			}
			t.Fatalf("demo exited %d before writing %q; stderr:\n%s", p.code, want, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not write %q within %v; stderr:\n%s", want, within, p.stderr)
		}
	}
}

// wait returns the exit code, failing the test if the demo runs past within.
func (p *demoProc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(within):
		t.Fatalf("demo still running after %v; stderr:\n%s", within, p.stderr)
		return 0
	}
}

func (p *demoProc) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path)
}

func TestEndpoints(t *testing.T) {
	p := startDemo(t, nil, "-version=v9")
	pid := p.cmd.Process.Pid
	client := &http.Client{Timeout: 10 * time.Second}
	echoBody := strings.Repeat("echo\x00\xff", 5000)

	tests := []struct {
		name, method, path, ctype, body string
		wantStatus                      int
		wantBody                        string // exact, unless empty
		wantPrefix                      string
		wantLen                         int64 // Content-Length, if not 0
		wantCtype                       string
		wantChunked                     bool
	}{
		{name: "root", path: "/", wantStatus: 200,
			wantBody: fmt.Sprintf("hello from demo pid=%d port=%d version=v9\n", pid, p.port)},
		{name: "healthz", path: "/healthz", wantStatus: 200, wantBody: "ok\n"},
		{name: "pid", path: "/pid", wantStatus: 200, wantBody: strconv.Itoa(pid)},
		{name: "slow", path: "/slow?ms=30", wantStatus: 200, wantBody: fmt.Sprintf("slow 30ms pid=%d\n", pid)},
		{name: "echo", method: "POST", path: "/echo", ctype: "application/x-test", body: echoBody,
			wantStatus: 200, wantBody: echoBody, wantCtype: "application/x-test", wantLen: int64(len(echoBody))},
		{name: "echo put", method: "PUT", path: "/echo", ctype: "text/odd", body: "x",
			wantStatus: 200, wantBody: "x", wantCtype: "text/odd"},
		{name: "size 1KiB", path: "/size?bytes=1024", wantStatus: 200, wantBody: string(sizeBody(1024)), wantLen: 1024},
		{name: "size 64KiB", path: "/size?bytes=65536", wantStatus: 200, wantBody: string(sizeBody(65536)), wantLen: 65536},
		{name: "size 200000", path: "/size?bytes=200000", wantStatus: 200, wantBody: string(sizeBody(200000)), wantLen: 200000},
		{name: "stream", path: "/stream?lines=3&ms=10", wantStatus: 200, wantChunked: true,
			wantBody: fmt.Sprintf("stream line=1/3 pid=%d\nstream line=2/3 pid=%d\nstream line=3/3 pid=%d\n", pid, pid, pid)},
		{name: "events", path: "/events?n=2&ms=10", wantStatus: 200, wantChunked: true, wantCtype: "text/event-stream",
			wantBody: fmt.Sprintf("id: 1\ndata: event 1/2 pid=%d\n\nid: 2\ndata: event 2/2 pid=%d\n\n", pid, pid)},
		{name: "unknown path", path: "/nope", wantStatus: 404},
		{name: "slow over cap", path: "/slow?ms=60001", wantStatus: 400},
		{name: "size missing", path: "/size", wantStatus: 400},
		{name: "size over cap", path: "/size?bytes=67108865", wantStatus: 400},
		{name: "events bad n", path: "/events?n=x", wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := cmp.Or(tt.method, "GET")
			req, err := http.NewRequest(method, p.url(tt.path), strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s: status %d, want %d; body %q", method, tt.path, resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("%s %s: body (%d bytes) %.80q, want (%d bytes) %.80q", method, tt.path, len(body), body, len(tt.wantBody), tt.wantBody)
			}
			if tt.wantLen != 0 && resp.ContentLength != tt.wantLen {
				t.Errorf("%s %s: Content-Length %d, want %d", method, tt.path, resp.ContentLength, tt.wantLen)
			}
			if got := resp.Header.Get("Content-Type"); tt.wantCtype != "" && got != tt.wantCtype {
				t.Errorf("%s %s: Content-Type %q, want %q", method, tt.path, got, tt.wantCtype)
			}
			if chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"; chunked != tt.wantChunked {
				t.Errorf("%s %s: chunked=%v, want %v", method, tt.path, chunked, tt.wantChunked)
			}
		})
	}
}

func TestVersionFromEnv(t *testing.T) {
	p := startDemo(t, []string{"DEMO_VERSION=7"}, "-version=3")
	if !strings.Contains(p.stderr.String(), "version=7") {
		t.Errorf("start line does not say version=7:\n%s", p.stderr)
	}
	resp, err := http.Get(p.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasSuffix(string(body), " version=7\n") {
		t.Errorf("body %q, want version=7 from DEMO_VERSION", body)
	}
}

func TestBadStarts(t *testing.T) {
	tests := []struct {
		name       string
		port       int
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"fail-start", 1, []string{"-fail-start"}, 1, "demo: failing on purpose (-fail-start)\n"},
		{"no port", 0, nil, 2, "-port=0: want a port in 1..65535"},
		{"bad flag", 1, []string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"extra arg", 1, []string{"extra"}, 2, `unexpected argument "extra"`},
		{"negative idle timeout", 1, []string{"-idle-timeout=-1s"}, 2, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := spawnDemo(t, tt.port, nil, nil, tt.args...)
			if code := p.wait(t, 10*time.Second); code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(p.stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", p.stderr, tt.wantStderr)
			}
		})
	}
}

func TestListenErrorExits1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := spawnDemo(t, ln.Addr().(*net.TCPAddr).Port, nil, nil)
	if code := p.wait(t, 10*time.Second); code != 1 {
		t.Errorf("exit code %d, want 1; stderr:\n%s", code, p.stderr)
	}
}

// TestSIGTERMDrains checks the graceful stop: a request in flight when
// SIGTERM arrives completes with 200, new connections are refused, and the
// demo exits 0 once the request is done.
func TestSIGTERMDrains(t *testing.T) {
	p := startDemo(t, nil)
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Timed from here: the request ends 500 ms after it at the earliest,
	// and the demo after it, however late a loaded machine sends SIGTERM.
	began := time.Now()
	if _, err := io.WriteString(conn, "GET /slow?ms=500 HTTP/1.1\r\nHost: demo\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitRead(t, conn) // in flight at the demo: not merely sent
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// The listener closes at once; the slow request is still running.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("demo still accepts connections 5s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-p.exited:
		// Judged only while the request cannot have ended; after that, the
		// response read below tells.
		if time.Since(began) < 500*time.Millisecond {
			t.Fatalf("demo exited %d before its in-flight request finished; stderr:\n%s", p.code, p.stderr)
		}
	default:
	}

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request lost on SIGTERM: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body of in-flight request: %v", err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "slow 500ms pid=") {
		t.Errorf("in-flight request: status %d body %q, want 200 slow 500ms", resp.StatusCode, body)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	if took := time.Since(began); took < 500*time.Millisecond {
		t.Errorf("demo finished %v after the request was sent; the 500ms request should have held it", took)
	}
	if !strings.Contains(p.stderr.String(), "stopped (signal terminated), drained in") {
		t.Errorf("no stop line on stderr:\n%s", p.stderr)
	}
}

func TestNeverReady(t *testing.T) {
	// Its log lines show it running, past its SIGTERM handler and where
	// it would listen: a loaded machine may take longer than any fixed
	// wait to start it, and SIGTERM before the handler kills it.
	out := &syncbuf.Buffer{}
	p := spawnDemo(t, freePort(t), nil, out, "-never-ready", "-log-every=10ms")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), " line=1\n"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line from the demo after 10s; stderr:\n%s", p.stderr)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))); err == nil {
		c.Close()
		t.Fatal("-never-ready demo accepts connections")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
}

func TestStartDelay(t *testing.T) {
	began := time.Now()
	p := startDemo(t, nil, "-start-delay=300ms")
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("listening after %v, want at least the 300ms -start-delay", took)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0; stderr:\n%s", code, p.stderr)
	}
}

// TestLogEvery reads numbered lines, then closes the pipe: the demo must say
// so on stderr and exit 3 rather than die of SIGPIPE.
func TestLogEvery(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := spawnDemo(t, freePort(t), nil, w, "-log-every=10ms")
	w.Close() // the child has its own copy
	pid := p.cmd.Process.Pid

	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := bufio.NewScanner(r)
	for n := 1; n <= 3; n++ {
		if !sc.Scan() {
			t.Fatalf("reading log line %d: %v; stderr:\n%s", n, sc.Err(), p.stderr)
		}
		if want := fmt.Sprintf("demo pid=%d line=%d", pid, n); sc.Text() != want {
			t.Errorf("log line %q, want %q", sc.Text(), want)
		}
	}
	r.Close()
	if code := p.wait(t, 10*time.Second); code != 3 {
		t.Errorf("exit code %d after stdout closed, want 3; stderr:\n%s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "writing log line to stdout") {
		t.Errorf("stderr does not report the stdout write error:\n%s", p.stderr)
	}
}

// waitRead waits, up to 10 s, until the demo has read what was sent on c:
// the demo's side of c got it all (c's side has nothing unacknowledged)
// and holds nothing unread (/proc/net/tcp, what ss shows). A request is
// then in its hands, however loaded the machine.
func waitRead(t *testing.T, c net.Conn) {
	t.Helper()
	hexAddr := func(a net.Addr) string {
		ta := a.(*net.TCPAddr)
		ip := ta.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ta.Port)
	}
	client, demo := hexAddr(c.LocalAddr()), hexAddr(c.RemoteAddr())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		sent, read := false, false
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// sl local_address rem_address st tx_queue:rx_queue ...
			f := strings.Fields(line)
			switch {
			case len(f) < 5:
			case f[1] == client && f[2] == demo:
				sent = strings.HasPrefix(f[4], "00000000:")
			case f[1] == demo && f[2] == client:
				read = strings.HasSuffix(f[4], ":00000000")
			}
		}
		if sent && read {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo has not read the request on %v after 10s", c.LocalAddr())
		}
	}
}

// dialDemo opens a connection to p with a deadline for the whole test.
func dialDemo(t *testing.T, p *demoProc) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// TestPiecesAreFlushedAsWritten: /stream and /events send the head with the
// first piece at once, and each later piece when it is written, chunked:
// what a proxy in front must pass on as it comes.
func TestPiecesAreFlushedAsWritten(t *testing.T) {
	p := startDemo(t, nil)
	const every = 300 * time.Millisecond
	for _, tt := range []struct{ path, end string }{
		{"/stream?lines=3&ms=300", "\n"},
		{"/events?n=3&ms=300", "\n\n"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			c := dialDemo(t, p)
			sent := time.Now()
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: demo\r\n\r\n", tt.path)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// The pieces are timed from the head, which comes with the
			// first: the demo (a -race child of this test) may answer
			// late on a loaded machine (300 ms seen), not hold them back.
			// Held back, they would come with the head, or together.
			head := time.Now()
			t.Logf("head after %v", head.Sub(sent).Round(time.Millisecond))
			if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("Content-Length %d, Transfer-Encoding %q; want chunked, no length", resp.ContentLength, resp.TransferEncoding)
			}
			body := bufio.NewReader(resp.Body)
			for i := range 3 {
				piece, err := readPiece(body, tt.end)
				at := time.Since(head)
				if err != nil {
					t.Fatalf("piece %d: %v %v after the head", i+1, err, at)
				}
				// Not before its time (held back and sent with the
				// others, or with the head), and not a whole period
				// after it (the first held for the second): a late tick
				// on a loaded machine (a fresh-clone CI run under load
				// saw the third 785 ms after the head) is not a fault.
				want := time.Duration(i) * every
				if at < want-every/2 || at > want+every {
					t.Errorf("piece %d (%q) %v after the head, want about %v", i+1, piece, at.Round(time.Millisecond), want)
				}
			}
		})
	}
}

// readPiece reads up to and including end.
func readPiece(br *bufio.Reader, end string) (string, error) {
	var s string
	for !strings.HasSuffix(s, end) {
		line, err := br.ReadString('\n')
		s += line
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// TestIdleTimeout: with -idle-timeout the demo closes a keep-alive
// connection once it has been idle that long; without it, not soon.
func TestIdleTimeout(t *testing.T) {
	get := func(t *testing.T, c net.Conn, br *bufio.Reader) {
		t.Helper()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: demo\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("GET /: status %d, close=%v; want 200, kept open", resp.StatusCode, resp.Close)
		}
	}
	t.Run("200ms", func(t *testing.T) {
		p := startDemo(t, nil, "-idle-timeout=200ms")
		c := dialDemo(t, p)
		br := bufio.NewReader(c)
		// Timed from before the request: the demo's idle clock starts
		// after it, however late a loaded machine lets this test read the
		// response.
		sent := time.Now()
		get(t, c, br)
		if n, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("read on the idle connection: %v %v, want EOF", n, err)
		}
		// net/http sets a read deadline of IdleTimeout: the close comes then,
		// give or take the scheduling of a loaded machine.
		if took := time.Since(sent); took < 150*time.Millisecond || took > 2*time.Second {
			t.Errorf("idle connection closed %v after the request, want about 200ms", took.Round(time.Millisecond))
		}
	})
	t.Run("default", func(t *testing.T) {
		p := startDemo(t, nil)
		c := dialDemo(t, p)
		br := bufio.NewReader(c)
		get(t, c, br)
		time.Sleep(500 * time.Millisecond)
		get(t, c, br)
	})
}
