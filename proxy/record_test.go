package proxy

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"smoothserve/upstream"
	"strings"
	"testing"
	"time"

	"smoothserve/accesslog"
)

// TestRequestsAreLoggedAndCounted: each request answered gets one line in
// its service's access log and one count in its stats.
func TestRequestsAreLoggedAndCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	log, err := accesslog.Open(path, accesslog.Combined)
	if err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "web", in), AccessLog: log})
	cl := dial(t, f.addr)
	cl.mustDo(get("x", "/one"))
	cl.mustDo("GET /two HTTP/1.1\r\nHost: x\r\nUser-Agent: tester\r\nReferer: http://r/\r\n\r\n")
	cl.mustDo("POST /three HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	cl.c.Close()
	time.Sleep(50 * time.Millisecond)
	log.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), b)
	}
	for i, want := range []string{`"GET /one HTTP/1.1" 200 `, `"GET /two HTTP/1.1" 200 `, `"POST /three HTTP/1.1" 200 `} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "service=web instance=0:") {
			t.Errorf("line %d: %s; want %s and the service and instance", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], `"http://r/" "tester"`) {
		t.Errorf("line 2 lacks the referer and user agent: %s", lines[1])
	}
	counts := map[string]uint64{}
	for _, st := range f.srv.Stats() {
		if st.Service != "web" {
			continue
		}
		for _, rc := range st.Requests {
			counts[rc.Method+" "+rc.Code] += rc.Count
		}
		if n := st.Buckets[len(st.Buckets)-1]; n != 3 {
			t.Errorf("histogram count %d, want 3", n)
		}
	}
	if counts["GET 200"] != 2 || counts["POST 200"] != 1 {
		t.Errorf("counts %v, want GET 200: 2, POST 200: 1", counts)
	}
}

// TestRequestsNoServiceTookAreLogged: a request for a host no service
// claims, and a head that could not be parsed, are logged as nginx logs
// them: in the port's own log when it has no default service, in the
// default service's when it has one; neither is counted in a service's
// stats.
func TestRequestsNoServiceTookAreLogged(t *testing.T) {
	dir := t.TempDir()
	open := func(name string, f accesslog.Format) (*accesslog.Log, func() string) {
		path := filepath.Join(dir, name)
		l, err := accesslog.Open(path, f)
		if err != nil {
			t.Fatal(err)
		}
		return l, func() string {
			l.Close()
			b, _ := os.ReadFile(path)
			return string(b)
		}
	}
	in := startInstance(t, "a", nil)
	// send sends each of raws on a connection of its own, and waits for
	// the proxy to be done with it: a head it rejects is logged once its
	// connection has closed, after the client has seen the answer.
	send := func(t *testing.T, f *fixture, raws ...string) {
		for _, raw := range raws {
			cl := dial(t, f.addr)
			cl.c.Write([]byte(raw))
			io.Copy(io.Discard, cl.br) // the answer, then the proxy's close
			cl.c.Close()
			waitUntil(t, "the connection's end", func() bool { return f.srv.connCount() == 0 })
		}
	}

	t.Run("a port without a default service", func(t *testing.T) {
		svcLog, svcLines := open("web.log", accesslog.Combined)
		portLog, portLines := open("port.log", accesslog.Combined)
		f := startProxy(t, Options{}, Route{Port: 1, Hosts: []string{"a.test"}, Set: setOf(t, "web", in), AccessLog: svcLog},
			Route{Port: 1, Hosts: []string{"b.test"}, Set: setOf(t, "api", in)}, Route{Port: 1, AccessLog: portLog})
		send(t, f, "GET /x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
			"\x16\x03\x01\x02\x00 hello\r\n\r\n",
			"GET /y HTTP/1.1\r\nHost: a.test\r\nBad Field: 1\r\n\r\n",
			"GET /ok HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
		port, svc := portLines(), svcLines()
		for _, want := range []string{
			`"GET /x HTTP/1.1" 404 `,
			`"\x16\x03\x01\x02\x00 hello" 400 `,
			`"GET /y HTTP/1.1" 400 `,
		} {
			if !strings.Contains(port, want) {
				t.Errorf("the port's log lacks %s:\n%s", want, port)
			}
		}
		if n := strings.Count(port, "service=- instance=-"); n != 3 {
			t.Errorf("%d of the port's lines name no service, want 3:\n%s", n, port)
		}
		if strings.Count(svc, "\n") != 1 || !strings.Contains(svc, `"GET /ok HTTP/1.1" 200 `) {
			t.Errorf("the service's log has other lines than its one request:\n%s", svc)
		}
		for _, st := range f.srv.Stats() {
			for _, rc := range st.Requests {
				if rc.Code != "200" {
					t.Errorf("service %s counted %s %s", st.Service, rc.Method, rc.Code)
				}
			}
		}
	})

	t.Run("a port with a default service", func(t *testing.T) {
		svcLog, svcLines := open("default.log", accesslog.JSON)
		portLog, portLines := open("port2.log", accesslog.JSON)
		f := startProxy(t, Options{}, Route{Port: 1, Hosts: []string{"a.test"}, Default: true, Set: setOf(t, "web", in), AccessLog: svcLog},
			Route{Port: 1, Hosts: []string{"b.test"}, Set: setOf(t, "api", in)}, Route{Port: 1, AccessLog: portLog})
		send(t, f, "GET / HTTP/9.9\r\nHost: a.test\r\n\r\n", "GET /ok HTTP/1.1\r\nHost: any.test\r\nConnection: close\r\n\r\n")
		if svc := svcLines(); !strings.Contains(svc, `"request":"GET / HTTP/9.9","status":505`) || !strings.Contains(svc, `"path":"/ok"`) {
			t.Errorf("the default service's log:\n%s", svc)
		}
		if port := portLines(); port != "" {
			t.Errorf("the port's log of a port with a default service:\n%s", port)
		}
	})

	t.Run("a port without routes, and the log of every port", func(t *testing.T) {
		allLog, allLines := open("all.log", accesslog.Combined)
		f := startProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "web", in)}, Route{AccessLog: allLog})
		send(t, f, "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", "BREW / HTCPCP/1.0\r\n\r\n")
		all := allLines()
		for _, want := range []string{`"GET /x HTTP/1.1" 404 `, `"BREW / HTCPCP/1.0" 400 `} {
			if !strings.Contains(all, want) {
				t.Errorf("the log of every port lacks %s:\n%s", want, all)
			}
		}
	})
}

// TestAnOverlongRequestLineIsLoggedClipped: a first line longer than
// MaxHeaderBytes is answered 431 and logged by as much of it as the log
// keeps, not as an empty request.
func TestAnOverlongRequestLineIsLoggedClipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "all.log")
	l, err := accesslog.Open(path, accesslog.Combined)
	if err != nil {
		t.Fatal(err)
	}
	f := startProxy(t, Options{MaxHeaderBytes: 2048}, Route{AccessLog: l})
	cl := dial(t, f.addr)
	cl.c.Write([]byte("GET /" + strings.Repeat("x", 3000) + " HTTP/1.1\r\nHost: a.test\r\n\r\n"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 431 {
		t.Fatalf("answer: %v %v", resp, err)
	}
	cl.c.Close()
	// Logged once its connection has closed, after the client has seen
	// the answer.
	waitUntil(t, "the connection's end", func() bool { return f.srv.connCount() == 0 })
	l.Close()
	b, _ := os.ReadFile(path)
	if want := `"GET /` + strings.Repeat("x", 2000); !strings.Contains(string(b), want) || !strings.Contains(string(b), `" 431 `) {
		t.Errorf("the log line of an overlong request line:\n%.300s", b)
	}
}

// TestALogOnlyRouteNamesNoHosts: a route without a service takes no
// hosts, and does not stop a service alone on its port from taking every
// host.
func TestALogOnlyRouteNamesNoHosts(t *testing.T) {
	set := upstream.NewSet("a", time.Second)
	for _, rs := range [][]Route{
		{{Port: 1, Hosts: []string{"x.test"}}}, {{Port: 0, Hosts: []string{"x.test"}}},
		{{Port: 0, Default: true}}, {{Port: 1, HTTPSPort: 443}},
		{{Port: 1}, {Port: 1}}, {{}, {}},
	} {
		if _, err := buildRoutes(rs, nil); err == nil {
			t.Errorf("routes without a service %+v were taken", rs)
		}
	}
	table, err := buildRoutes([]Route{{Port: 1, Hosts: []string{"a.test"}, Set: set}, {Port: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := table.ports[1].lookup([]byte("other.test")).setOrNil(); got != set {
		t.Errorf("other.test routed to %v, want the service alone on its port", got)
	}
}

// TestUnroutedRequestsOverTLSAreLogged: over HTTPS too, HTTP/1.1 and
// HTTP/2, a host no service claims is logged in the port's log.
func TestUnroutedRequestsOverTLSAreLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "port.log")
	portLog, err := accesslog.Open(path, accesslog.Combined)
	if err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, "a", nil)
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)},
		Route{Port: 2, Hosts: []string{"b.test"}, Set: setOf(t, "b", in)}, Route{Port: 2, AccessLog: portLog})
	for _, h2 := range []bool{false, true} {
		resp, err := f.client(h2).Get("https://c.test/nobody")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("h2 %v: status %d, want 404", h2, resp.StatusCode)
		}
	}
	// An HTTP/2 stream is logged as its handler ends, which may be after
	// the client has the answer.
	waitUntil(t, "the streams done", func() bool { return f.srv.InFlight() == 0 })
	f.srv.Close()
	portLog.Close()
	b, _ := os.ReadFile(path)
	for _, want := range []string{`"GET /nobody HTTP/1.1" 404 `, `"GET /nobody HTTP/2.0" 404 `} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the port's log lacks %s:\n%s", want, b)
		}
	}
}

// TestOpenConnectionsOfAnIdlePortAreZero: a port served with no client
// connection open counts 0, so that smoothserve_open_connections{port}
// reads 0 then rather than vanishing from /metrics (a gauge that is
// absent cannot be alerted on or graphed as 0).
func TestOpenConnectionsOfAnIdlePortAreZero(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "web", in)})
	waitOpen := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, ok := f.srv.OpenConnections()[1]
			if ok && n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("OpenConnections() = %v, want port 1 with %d", f.srv.OpenConnections(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitOpen(0)
	cl := dial(t, f.addr)
	cl.mustDo(get("x", "/"))
	waitOpen(1)
	cl.c.Close()
	waitOpen(0)
}
