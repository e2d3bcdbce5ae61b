package proxy

// What the proxy promises against hostile or careless clients (issue 14):
// strict request heads, headers a client cannot strip or forge, no h2c,
// prompt flushing, error bodies that say nothing of the inside, and body
// limits.

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"smoothserve/upstream"
)

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkError fails the test unless r is the proxy's own error response for
// status: the status text as its whole body, and a request id.
func checkError(t *testing.T, what string, r *wireResponse, status int) {
	t.Helper()
	if want := statusText(status) + "\n"; r.status != status || string(r.body) != want {
		t.Errorf("%s: got %d %q, want %d %q", what, r.status, r.body, status, want)
	}
	if id := r.header.Get("X-Request-Id"); id == "" {
		t.Errorf("%s: no X-Request-Id on the error response", what)
	}
}

func TestHostileRequestsAreRejected(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	f := startProxy(t, Options{MaxHeaderFields: 10}, Route{Port: 1, Set: in.set("s", 30*time.Second)})
	post := func(fields string) string {
		return "POST / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n\r\nhello"
	}
	tests := []struct {
		name, raw string
		status    int
	}{
		{"bare CR hiding a coding", post("X-A: x\rTransfer-Encoding: chunked\r\nContent-Length: 5"), 400},
		{"NUL in a value", post("X-A: a\x00b\r\nContent-Length: 5"), 400},
		{"control in a value", post("X-A: a\x01b\r\nContent-Length: 5"), 400},
		{"VT in a value", post("X-A: a\x0bb\r\nContent-Length: 5"), 400},
		{"DEL in a value", post("X-A: a\x7fb\r\nContent-Length: 5"), 400},
		{"GET *", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"relative target", "GET t/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"obs-text in the target", "GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"control in the target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"DEL in the target", "GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"userinfo", "GET http://u@h/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"no authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"http:/x", "GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"other scheme", "GET ftp://h/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"port too long", "GET http://h:123456/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"Host with @", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
		{"Host with /", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"Host with a control", "GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n", 400},
		{"empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two equal lengths", post("Content-Length: 5\r\nContent-Length: 5"), 400},
		{"length 5, 5", post("Content-Length: 5, 5"), 400},
		{"length +5", post("Content-Length: +5"), 400},
		{"length -1", post("Content-Length: -1"), 400},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"chunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", 400},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
		{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: 1\r\n", 10) + "\r\n", 431},
		{"gzip coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
	}
	for _, tt := range tests {
		cl := dialRaw(t, f.addr)
		r, err := cl.send(tt.raw)
		if err != nil {
			t.Errorf("%s: %v (read %q)", tt.name, err, rawOf(r))
			continue
		}
		checkError(t, tt.name, r, tt.status)
		if !headerHasToken(r.header, "Connection", "close") {
			t.Errorf("%s: no Connection: close", tt.name)
		}
		if err := cl.closed(2 * time.Second); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if n, reqs := in.accepts.Load(), in.requests(); n != 0 || len(reqs) != 0 {
		t.Errorf("the instance was connected to %d times and got %d requests, want nothing", n, len(reqs))
	}
	// The server behind the proxy answers OPTIONS *.
	r := dialRaw(t, f.addr).mustSend("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
	if reqs := in.requests(); r.status != 200 || len(reqs) != 1 || firstLine(string(reqs[0].head)) != "OPTIONS * HTTP/1.1" {
		t.Errorf("OPTIONS *: got %v, the instance %d requests, want 200 and \"OPTIONS * HTTP/1.1\" forwarded", r, len(reqs))
	}
}

// lastSeen returns what in received last, failing the test if nothing.
func lastSeen(t *testing.T, in *scripted) seenRequest {
	t.Helper()
	reqs := in.requests()
	if len(reqs) == 0 {
		t.Fatal("the instance received nothing")
	}
	seen := reqs[len(reqs)-1]
	if seen.err != nil || seen.bodyErr != nil {
		t.Fatalf("the instance could not read %q: %v %v", seen.head, seen.err, seen.bodyErr)
	}
	return seen
}

// countFields counts the fields named name in a raw head.
func countFields(head []byte, name string) int {
	n := 0
	for _, line := range strings.Split(string(head), "\r\n")[1:] {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			n++
		}
	}
	return n
}

func TestConnectionCannotRemoveWhatTheInstanceRelies(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	f := startProxy(t, Options{}, Route{Port: 1, Set: in.set("s", 30*time.Second)})
	cl := dialRaw(t, f.addr)
	tests := []struct {
		name, raw string
		field     string // the field the instance must get
		want      string
		body      string
	}{
		{"Host", "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: Host\r\n\r\n", "Host", "a.test", ""},
		{"Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello", "Content-Length", "5", "hello"},
		{"Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "", "", "hello"},
		{"X-Forwarded-For", "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", "X-Forwarded-For", "127.0.0.1", ""},
		{"X-Forwarded-Host", "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-Host, X-Forwarded-Proto\r\n\r\n", "X-Forwarded-Host", "a", ""},
		{"X-Forwarded-Proto", "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-Proto\r\n\r\n", "X-Forwarded-Proto", "http", ""},
		{"X-Foo is removed", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\nX-Bar: 2\r\n\r\n", "X-Foo", "", ""},
	}
	for _, tt := range tests {
		if r := cl.mustSend(tt.raw); r.status != 200 {
			t.Errorf("Connection: %s: got %v, want 200", tt.name, r)
			continue
		}
		seen := lastSeen(t, in)
		got := seen.req.Header.Get(tt.field)
		if tt.field == "Host" {
			got = seen.req.Host
		}
		if tt.field != "" && got != tt.want || string(seen.body) != tt.body {
			t.Errorf("Connection: %s: the instance got %s %q and body %q, want %q and %q\n%s", tt.name, tt.field, got, seen.body, tt.want, tt.body, seen.head)
		}
		if tt.field != "" && tt.want != "" && countFields(seen.head, tt.field) != 1 {
			t.Errorf("Connection: %s: %d %s fields at the instance, want 1", tt.name, countFields(seen.head, tt.field), tt.field)
		}
	}
	if seen := lastSeen(t, in); seen.req.Header.Get("X-Bar") != "2" {
		t.Errorf("X-Bar, not named by Connection, did not reach the instance")
	}
}

// X-Forwarded-For and the other fields the proxy writes, spelt with '_'
// for '-', are not forwarded: a CGI-style gateway (WSGI, PHP, Rack) reads
// X_Forwarded_For as HTTP_X_FORWARDED_FOR, the proxy's own field, so a
// client could put its word first there (wsgiref: "6.6.6.6,127.0.0.1").
// Other names with '_' go through.
func TestForwardingFieldsSpeltWithUnderscoresAreDropped(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	f := startProxy(t, Options{}, Route{Port: 1, Set: in.set("s", 30*time.Second)})
	cl := dialRaw(t, f.addr)
	r := cl.mustSend("GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nx_forwarded_host: evil\r\n" +
		"X-Forwarded_Proto: https\r\nX_Request_Id: mine\r\nX_Other: 1\r\n\r\n")
	if r.status != 200 {
		t.Fatalf("got %v, want 200", r)
	}
	seen := lastSeen(t, in)
	for _, name := range []string{"X_Forwarded_For", "x_forwarded_host", "X-Forwarded_Proto", "X_Request_Id"} {
		if countFields(seen.head, name) != 0 {
			t.Errorf("%s reached the instance:\n%s", name, seen.head)
		}
	}
	if countFields(seen.head, "X_Other") != 1 || seen.req.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("X_Other and the proxy's X-Forwarded-For must reach the instance:\n%s", seen.head)
	}
}

// An HTTP/1.0 request without Host (to the port's default service) has
// no host to forward: no X-Forwarded-Host, rather than an empty one that a
// framework trusting it would take for a host.
func TestNoHostIsForwardedWithoutXForwardedHost(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	f := startProxy(t, Options{}, Route{Port: 1, Set: in.set("s", 30*time.Second)})
	cl := dialRaw(t, f.addr)
	if r := cl.mustSend("GET /p HTTP/1.0\r\n\r\n"); r.status != 200 {
		t.Fatalf("HTTP/1.0 without Host: got %v, want the instance's 200", r)
	}
	seen := lastSeen(t, in)
	if n := countFields(seen.head, "X-Forwarded-Host"); n != 0 || countFields(seen.head, "X-Forwarded-For") != 1 {
		t.Errorf("the instance got %d X-Forwarded-Host fields, want none (and one X-Forwarded-For):\n%s", n, seen.head)
	}
}

func TestAbsoluteFormTargetChoosesTheService(t *testing.T) {
	t.Parallel()
	a, b := startScripted(t, answerEach(ok200)), startScripted(t, answerEach(ok200))
	f := startProxy(t, Options{},
		Route{Port: 1, Hosts: []string{"a.test"}, Set: a.set("a", 30*time.Second)},
		Route{Port: 1, Hosts: []string{"b.test"}, Set: b.set("b", 30*time.Second)})
	cl := dialRaw(t, f.addr)
	tests := []struct{ target, host, uri string }{
		{"http://b.test/x", "b.test", "/x"},
		{"http://B.TEST:80?q=1", "B.TEST:80", "/?q=1"},
		{"https://b.test", "b.test", "/"},
	}
	for _, tt := range tests {
		if r := cl.mustSend("GET " + tt.target + " HTTP/1.1\r\nHost: a.test\r\n\r\n"); r.status != 200 {
			t.Fatalf("GET %s: got %v", tt.target, r)
		}
		seen := lastSeen(t, b)
		if seen.req.Host != tt.host || seen.req.RequestURI != tt.uri || countFields(seen.head, "Host") != 1 ||
			seen.req.Header.Get("X-Forwarded-Host") != tt.host {
			t.Errorf("GET %s with Host a.test: b.test's instance got\n%s\nwant one Host %s and target %s", tt.target, seen.head, tt.host, tt.uri)
		}
	}
	if n := len(a.requests()); n != 0 {
		t.Errorf("a.test's instance got %d requests, want 0", n)
	}
}

func TestH2CUpgradeIsNotPassedOn(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	f := startProxy(t, Options{}, Route{Port: 1, Set: in.set("s", 30*time.Second)})
	cl := dialRaw(t, f.addr)
	r := cl.mustSend("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
		"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	if r.status != 200 || string(r.body) != "ok" {
		t.Fatalf("h2c upgrade: got %v, want the instance's 200", r)
	}
	seen := lastSeen(t, in)
	for _, name := range []string{"Upgrade", "HTTP2-Settings", "Connection"} {
		if v := seen.req.Header.Get(name); v != "" {
			t.Errorf("the instance got %s: %q, want none", name, v)
		}
	}
	// The connection still speaks HTTP/1.1 through the proxy.
	r = cl.mustSend("GET /next HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
	seen = lastSeen(t, in)
	if r.status != 200 || seen.req.URL.Path != "/next" || seen.req.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("next request: got %v; the instance got %s with X-Forwarded-For %q, want /next, 127.0.0.1",
			r, seen.req.URL.Path, seen.req.Header.Get("X-Forwarded-For"))
	}
}

func TestResponseIsFlushedWhileTheNextRequestIsIncomplete(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	f := startProxy(t, Options{}, Route{Port: 1, Set: in.set("s", 30*time.Second)})
	cl := dialRaw(t, f.addr)
	start := time.Now()
	io.WriteString(cl.c, get("a", "/1")+"GET /2 HTTP/1.1\r\nHo")
	r, err := readStrict(cl.br, "GET")
	if d := time.Since(start); err != nil || r.status != 200 || d > prompt {
		t.Fatalf("first response: %v %v after %v, want 200 within %v", r, err, d, prompt)
	}
	if r := cl.mustSend("st: a\r\n\r\n"); r.status != 200 {
		t.Fatalf("second response: %v", r)
	}
	if reqs := in.requests(); len(reqs) != 2 || reqs[1].req.URL.Path != "/2" {
		t.Errorf("the instance got %d requests, want /1 and /2", len(reqs))
	}
}

func TestErrorResponsesTellNothingOfTheInside(t *testing.T) {
	t.Parallel()
	broken := startScripted(t, answerEach("HTTP/2.0 200 OK\r\n\r\n"))
	f := startProxy(t, Options{},
		Route{Port: 1, Hosts: []string{"broken.test"}, Set: broken.set("broken", 30*time.Second)},
		Route{Port: 1, Hosts: []string{"empty.test"}, Set: upstream.NewSet("empty", 50*time.Millisecond)})
	tests := []struct {
		raw    string
		status int
	}{
		{get("broken.test", "/"), 502},
		{get("empty.test", "/"), 503},
		{get("secret-host.test", "/"), 404},
		{"GET / HTTP/1.1\r\nHost: secret-host.test\r\nX-A: \x01\r\n\r\n", 400},
	}
	for _, tt := range tests {
		r := dialRaw(t, f.addr).mustSend(tt.raw)
		checkError(t, firstLine(tt.raw), r, tt.status)
		for _, secret := range []string{broken.addr(), "127.0.0.1", "secret-host", "broken.test", "empty"} {
			if strings.Contains(strings.ToLower(string(r.raw)), secret) {
				t.Errorf("%d response names %q:\n%s", tt.status, secret, r.raw)
			}
		}
		if id := r.header.Get("X-Request-Id"); !requestIDPattern.MatchString(id) {
			t.Errorf("%d response: X-Request-Id %q, want 32 hex digits", tt.status, id)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	set := in.set("s", 30*time.Second)
	untrusted := startProxy(t, Options{}, Route{Port: 1, Hosts: []string{"a"}, Set: set})
	trusted := startProxy(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		Route{Port: 1, Hosts: []string{"a"}, Set: set}, Route{Port: 1, Hosts: []string{"b"}, Set: set})

	cl := dialRaw(t, untrusted.addr)
	ids := map[string]bool{}
	for i := 0; i < 3; i++ {
		cl.mustSend("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-id\r\n\r\n")
		id := lastSeen(t, in).req.Header.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) || ids[id] {
			t.Errorf("untrusted client, request %d: the instance got X-Request-Id %q, want 32 new hex digits", i, id)
		}
		ids[id] = true
	}

	cl = dialRaw(t, trusted.addr)
	tests := []struct{ sent, want string }{
		{"abc-123", "abc-123"},
		{"", ""},      // none sent: a new one
		{"a b", ""},   // not a token: a new one
		{"a\xe9", ""}, // not a token: a new one
	}
	for _, tt := range tests {
		raw := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
		if tt.sent != "" {
			raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: " + tt.sent + "\r\n\r\n"
		}
		cl.mustSend(raw)
		id := lastSeen(t, in).req.Header.Get("X-Request-Id")
		if tt.want != "" && id != tt.want || tt.want == "" && !requestIDPattern.MatchString(id) {
			t.Errorf("trusted proxy sent %q: the instance got %q, want %q (or a new one)", tt.sent, id, tt.want)
		}
	}
	r := cl.mustSend("GET / HTTP/1.1\r\nHost: c\r\nX-Request-Id: abc-404\r\n\r\n")
	if r.status != 404 || r.header.Get("X-Request-Id") != "abc-404" {
		t.Errorf("trusted proxy's request answered %d with X-Request-Id %q, want 404 with its id abc-404", r.status, r.header.Get("X-Request-Id"))
	}
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	small, streamed := in.set("small", 30*time.Second), in.set("streamed", 30*time.Second)
	small.SetMaxBodySize(100)
	streamed.SetMaxBodySize(100 << 10) // over maxKeptBody: streamed to the instance
	f := startProxy(t, Options{BodyTimeout: 300 * time.Millisecond},
		Route{Port: 1, Hosts: []string{"small"}, Set: small}, Route{Port: 1, Hosts: []string{"streamed"}, Set: streamed})

	chunked := func(host string, n, chunk int) string {
		var sb strings.Builder
		fmt.Fprintf(&sb, "POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", host)
		for ; n > 0; n -= chunk {
			k := min(n, chunk)
			fmt.Fprintf(&sb, "%x\r\n%s\r\n", k, strings.Repeat("x", k))
		}
		return sb.String() + "0\r\n\r\n"
	}
	tests := []struct {
		name, raw string
		status    int
		stall     bool // the client sends no more and waits
	}{
		{"length at the limit", "POST / HTTP/1.1\r\nHost: small\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100), 200, false},
		{"length over the limit", "POST / HTTP/1.1\r\nHost: small\r\nContent-Length: 101\r\n\r\n" + strings.Repeat("x", 101), 413, false},
		{"chunked over the limit", chunked("small", 150, 60), 413, false},
		{"chunked streamed past the limit", chunked("streamed", 200<<10, 8<<10), 413, false},
		{"stalled length", "POST / HTTP/1.1\r\nHost: small\r\nContent-Length: 10\r\n\r\nhel", 408, true},
		{"stalled chunks", "POST / HTTP/1.1\r\nHost: small\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 408, true},
	}
	for _, tt := range tests {
		before := len(in.requests())
		cl := dialRaw(t, f.addr)
		// A large body is written while the proxy answers.
		wrote := make(chan error, 1)
		go func() {
			_, err := io.WriteString(cl.c, tt.raw)
			wrote <- err
		}()
		start := time.Now()
		r, err := readStrict(cl.br, "POST")
		if err != nil {
			t.Errorf("%s: %v (read %q)", tt.name, err, rawOf(r))
			continue
		}
		if tt.status == 200 {
			if r.status != 200 {
				t.Errorf("%s: got %v, want 200", tt.name, r)
			}
			<-wrote
			continue
		}
		checkError(t, tt.name, r, tt.status)
		if d := time.Since(start); tt.stall && (d < 250*time.Millisecond || d > 2*time.Second) {
			t.Errorf("%s: %d after %v, want it at the 300ms BodyTimeout", tt.name, tt.status, d)
		}
		if err := cl.closed(3 * time.Second); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		select {
		case <-wrote:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the client's write never ended", tt.name)
		}
		for _, seen := range in.requests()[before:] {
			if seen.err == nil && seen.bodyErr == nil {
				t.Errorf("%s: the instance received a complete request (%d body bytes), want none", tt.name, len(seen.body))
			}
		}
	}
}

func TestErrorResponseToHEADHasNoBody(t *testing.T) {
	t.Parallel()
	in := startScripted(t, func(sc *scriptConn) {
		for {
			seen, err := sc.next()
			if err != nil {
				return
			}
			if seen.req.URL.Path == "/bad" {
				io.WriteString(sc, "HTTP/2.0 200 OK\r\n\r\n")
				return
			}
			io.WriteString(sc, ok200)
		}
	})
	f := startProxy(t, Options{}, Route{Port: 1, Hosts: []string{"a"}, Set: in.set("a", 30*time.Second)},
		Route{Port: 1, Hosts: []string{"b"}, Set: in.set("b", 30*time.Second)})
	for _, tt := range []struct {
		raw    string
		status int
	}{
		{"HEAD / HTTP/1.1\r\nHost: nowhere\r\n\r\n", 404},
		{"HEAD /bad HTTP/1.1\r\nHost: a\r\n\r\n", 502},
	} {
		// A HEAD response ends with its head: a body would be read as
		// the start of the next response.
		cl := dialRaw(t, f.addr)
		if r, err := cl.send(tt.raw); err != nil || r.status != tt.status {
			t.Errorf("%q: got %v %v, want %d", firstLine(tt.raw), r, err, tt.status)
			continue
		}
		if r, err := cl.send(get("a", "/")); err != nil || r.status != 200 || string(r.body) != "ok" {
			t.Errorf("GET after %q answered %d on the same connection: got %v %v (%q), want 200 \"ok\"",
				firstLine(tt.raw), tt.status, r, err, rawOf(r))
		}
	}
}

func TestHTTP10ClientGetsNoInterimResponse(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach(ok200))
	f := startProxy(t, Options{}, Route{Port: 1, Set: in.set("s", 30*time.Second)})
	// RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0
	// request; an HTTP/1.0 client takes any response for the final one.
	cl := dialRaw(t, f.addr)
	io.WriteString(cl.c, "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
	if r, err := readStrict(cl.br, "POST"); err != nil || r.status != 200 {
		t.Errorf("HTTP/1.0 POST with Expect: 100-continue: first response %v %v (%q), want the final 200", r, err, rawOf(r))
	}
}
