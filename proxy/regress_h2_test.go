package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smoothserve/accesslog"
	"smoothserve/upstream"
)

// Over HTTP/1.1 the instance's Content-Length reaches the client; over
// HTTP/2 the bridge dropped it (its copy of the fields skipped every
// hop-by-hop id, and hdrContentLength is one), so a HEAD had no length and
// a large GET none.
func TestRegressH2KeepsContentLength(t *testing.T) {
	body := strings.Repeat("x", 100000)
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "100000")
		if r.Method != http.MethodHead {
			io.WriteString(w, body)
		}
	})
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
	for _, h2 := range []bool{false, true} {
		cl := f.client(h2)
		for _, m := range []string{"GET", "HEAD"} {
			req, _ := http.NewRequest(m, "https://a.test/", nil)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.ContentLength != 100000 {
				t.Errorf("%s over %s: Content-Length %d (header %q), want 100000", m, resp.Proto, resp.ContentLength, resp.Header.Get("Content-Length"))
			}
		}
	}
}

// A 103's fields are put in the response's header map and stay there: the
// final response carries them twice (and a 502 after a 103 carries them).
func TestRegressH2EarlyHintsDoNotLeakIntoFinal(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
		if req.URL.Path == "/broken" {
			io.WriteString(c, "garbage\r\n\r\n")
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nLink: </a.css>; rel=preload\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	set := setOfAddr(t, "a", in.ln.Addr().String())
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: set})
	for _, h2 := range []bool{false, true} {
		cl := f.client(h2)
		resp, err := cl.Get("https://a.test/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Values("Link"); len(got) != 1 {
			t.Errorf("over %s: final response Link %q, want the instance's one", resp.Proto, got)
		}
		resp, err = cl.Get("https://a.test/broken")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Values("Link"); resp.StatusCode == 502 && len(got) != 0 {
			t.Errorf("over %s: the proxy's own 502 carries the 103's Link %q", resp.Proto, got)
		}
	}
}

// The combined line's first field (the client) is written raw; behind a
// trusted proxy it is the last item of X-Forwarded-For, which a proxy that
// passes the header on (or a client, when the proxy does not append) can
// fill with spaces and quotes to forge the line's fields.
func TestRegressCombinedLogClientIsEscaped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	log, err := accesslog.Open(path, accesslog.Combined)
	if err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Route{Port: 1, Set: setOf(t, "web", in), AccessLog: log})
	cl := dial(t, f.addr)
	forged := `6.6.6.6 - - [01/Jan/2020:00:00:00 +0000] "GET /admin HTTP/1.1" 200 1 "-" "x"`
	cl.mustDo("GET /real HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + forged + "\r\n\r\n")
	cl.c.Close()
	time.Sleep(50 * time.Millisecond)
	log.Close()
	b, _ := os.ReadFile(path)
	line := string(b)
	if strings.HasPrefix(line, `6.6.6.6 - - [01/Jan/2020:00:00:00 +0000] "GET /admin HTTP/1.1" 200 1`) {
		t.Errorf("a forged X-Forwarded-For writes the line's leading fields:\n%s", line)
	}
}

// The bridge writes the :path into the instance's request line as it came;
// HTTP/2 allows a space in it (and Go's server accepts it), so the instance
// gets "GET /a b HTTP/1.1", a request line the HTTP/1.1 path would never send.
func TestRegressH2PathWithSpaceIsNotForwardedRaw(t *testing.T) {
	lines := make(chan string, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		lines <- line
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}()
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "a", ln.Addr().String())})
	req, _ := http.NewRequest("GET", "https://a.test/", nil)
	req.URL.Opaque = "/a b HTTP/1.1 /x"
	resp, err := f.client(true).Do(req)
	if err != nil {
		t.Skipf("client or server refused the path: %v", err)
	}
	resp.Body.Close()
	select {
	case line := <-lines:
		if strings.Count(line, " ") != 2 {
			t.Errorf("the instance got the request line %q (answered %d)", line, resp.StatusCode)
		}
	case <-time.After(time.Second):
		t.Logf("nothing reached the instance; answered %d", resp.StatusCode)
	}
}

func setOfAddr(t *testing.T, name, addr string) *upstream.Set {
	set := upstream.NewSet(name, time.Second)
	set.Add(upstream.NewBackend(name, 0, addr))
	return set
}

func mustListen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
