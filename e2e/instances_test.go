package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Instances as they really are (issue 14): they close idle keep-alive
// connections (Node's http after 5 s, gunicorn after 2 s, Go's
// IdleTimeout), and they stream chunked responses (server-sent events).

// keepAlive is one client connection to the proxy, used request after
// request as a browser does. It reads responses with http.ReadResponse
// over the raw connection: net/http's Transport would silently resend a
// request that failed on a reused connection, hiding the very failure
// looked for.
type keepAlive struct {
	t    *testing.T
	addr string
	c    net.Conn
	br   *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	k := &keepAlive{t: t, addr: addr}
	k.redial()
	t.Cleanup(func() { k.c.Close() })
	return k
}

func (k *keepAlive) redial() {
	k.t.Helper()
	if k.c != nil {
		k.c.Close()
	}
	c, err := net.DialTimeout("tcp", k.addr, 2*time.Second)
	if err != nil {
		k.t.Fatal(err)
	}
	k.c, k.br = c, bufio.NewReader(c)
}

// do sends one request and reads its response within 5 s. It returns the
// status and body; on an error, or a response that ends the connection, it
// dials a new connection for the next request.
func (k *keepAlive) do(method, host, path string, body []byte) (status int, got []byte, err error) {
	defer func() {
		if err != nil {
			k.redial()
		}
	}()
	k.c.SetDeadline(time.Now().Add(5 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host)
	if body != nil {
		req += fmt.Sprintf("Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", len(body))
	}
	if _, err := k.c.Write(append([]byte(req+"\r\n"), body...)); err != nil {
		return 0, nil, fmt.Errorf("writing the request: %w", err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the response: %w", err)
	}
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, got, fmt.Errorf("reading the body: %w", err)
	}
	if resp.Close {
		return resp.StatusCode, got, fmt.Errorf("the response closes the connection")
	}
	return resp.StatusCode, got, nil
}

// A pooled connection to an instance that the instance closed while it was
// idle must not fail a request, nor mark the instance failed: the request
// goes again on a fresh connection. Gaps are just under, at and just over
// the instance's 200 ms idle timeout, where the instance may close the
// connection as the proxy writes into it, and well over it.
func TestStaleUpstreamConnectionIsNotAFailure(t *testing.T) {
	e := newEnv(t, 4)
	// start_timeout: a request that waits for another instance (there is
	// none) gets its 503 after 2 s, not 30.
	e.service("web", "web.test", 1, closesIdleConns+"start_timeout: 2\n")
	d := e.startDaemon()
	var pid int
	for p := range d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second) {
		pid = p
	}

	type step struct {
		gap    time.Duration // idle before the request
		method string
	}
	steps := []step{{0, "GET"}, {500 * time.Millisecond, "GET"}, {500 * time.Millisecond, "POST"}}
	// Each request after a gap follows one at once, which leaves the proxy
	// a pooled connection that then idles for the gap: a request that
	// failed would have left none.
	for _, ms := range []time.Duration{150, 190, 200, 210, 250, 300, 600} {
		gap := ms * time.Millisecond
		steps = append(steps, step{0, "GET"}, step{gap, "GET"}, step{0, "GET"}, step{gap, "POST"})
	}

	k := dialKeepAlive(t, e.proxyAddr())
	wantHello := fmt.Sprintf("hello from demo pid=%d ", pid)
	failed := 0
	for i, s := range steps {
		time.Sleep(s.gap)
		var body []byte
		if s.method == "POST" {
			body = []byte(strings.Repeat(fmt.Sprintf("request %d after %v idle\n", i, s.gap), 20))
		}
		path := map[string]string{"GET": "/", "POST": "/echo"}[s.method]
		start := time.Now()
		status, got, err := k.do(s.method, "web.test", path, body)
		took := time.Since(start)
		ok := err == nil && status == 200 && took < time.Second
		switch {
		case !ok:
		case s.method == "GET":
			ok = strings.HasPrefix(string(got), wantHello)
		default:
			ok = bytes.Equal(got, body)
		}
		if !ok {
			failed++
			what := fmt.Sprintf("status %d, body %.80q", status, got)
			if err != nil {
				what = fmt.Sprintf("%s (%v)", what, err)
			}
			t.Errorf("request %d, %s %s after %v idle: %s after %v; want 200 within 1s on the same connection",
				i, s.method, path, s.gap, what, took.Round(time.Millisecond))
		}
	}
	t.Logf("%d requests on one keep-alive connection, %d failed", len(steps), failed)

	// The instance was never taken for a failed one.
	inst := instancesOf(t, e.statusJSON())["web"]
	if len(inst) != 1 || inst[0]["state"] != "ready" || int(inst[0]["pid"].(float64)) != pid || inst[0]["restarts"].(float64) != 0 {
		t.Errorf("instances after the requests: %v; want pid %d, ready, never restarted", inst, pid)
	}
}

// piece is a part of a streamed response and when it arrived, counted from
// when the request was sent.
type piece struct {
	text string
	at   time.Duration
}

// getStreamed sends GET path on a new connection to addr and reads the
// response, noting when its head arrived and when each piece did; a piece
// ends with end ("\n" for a line, "\n\n" for a server-sent event).
func getStreamed(t *testing.T, addr, host, path, end string) (*http.Response, time.Duration, []piece) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	sent := time.Now()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	head := time.Since(sent)
	defer resp.Body.Close()
	// http.ReadResponse's chunked reader returns what has arrived without
	// waiting for more, so each piece is timed as it comes.
	body := bufio.NewReader(resp.Body)
	var pieces []piece
	for {
		var text string
		for !strings.HasSuffix(text, end) {
			line, err := body.ReadString('\n')
			text += line
			if err == io.EOF && text == "" {
				return resp, head, pieces
			}
			if err != nil {
				t.Fatalf("GET %s: after %d pieces (%v): %v", path, len(pieces), pieces, err)
			}
		}
		pieces = append(pieces, piece{text, time.Since(sent)})
	}
}

// checkStreamed checks a response of n pieces written every `every`: chunked
// (no Content-Length), its head and first piece at once, and each piece
// when it was written, not held back until later ones. The pieces are
// timed from the head, which the instance sends with the first: a loaded
// machine may answer the request late, which holds nothing back. Held
// back, the pieces would come with the head, or together.
func checkStreamed(t *testing.T, resp *http.Response, head time.Duration, pieces []piece, n int, every time.Duration) {
	t.Helper()
	var times []string
	for _, p := range pieces {
		times = append(times, p.at.Round(time.Millisecond).String())
	}
	t.Logf("head after %v, pieces after %s", head.Round(time.Millisecond), strings.Join(times, ", "))
	if resp.StatusCode != 200 || resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("status %d, Content-Length %d, Transfer-Encoding %q; want 200, chunked, no length", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
	}
	if all := time.Duration(n-1) * every; head > all {
		t.Errorf("the response head arrived after %v; want it when the instance sent it, not after the %v of the stream", head.Round(time.Millisecond), all)
	}
	if len(pieces) != n {
		t.Fatalf("%d pieces, want %d: %v", len(pieces), n, pieces)
	}
	const soon = 400 * time.Millisecond
	for i, p := range pieces {
		written := time.Duration(i) * every
		if at := p.at - head; at < written-every/2 || at > written+soon {
			t.Errorf("piece %d (%q) arrived %v after the head; it was written about %v after it", i+1, p.text, at.Round(time.Millisecond), written)
		}
	}
}

// Every chunk of a chunked response reaches the client as it arrives from
// the instance, the head with the first: a line of /stream and an event of
// /events every 0.5 s for 2 s.
func TestChunkedResponseIsStreamed(t *testing.T) {
	e := newEnv(t, 4)
	e.service("web", "web.test", 1, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	for _, tt := range []struct{ path, end string }{
		{"/stream?lines=5&ms=500", "\n"},
		{"/events?n=5&ms=500", "\n\n"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp, head, pieces := getStreamed(t, e.proxyAddr(), "web.test", tt.path, tt.end)
			checkStreamed(t, resp, head, pieces, 5, 500*time.Millisecond)
		})
	}
}
