package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"smoothserve/internal/testcert"
	"smoothserve/upstream"
)

// tlsFixture is a proxy serving TLS (HTTP/2 and HTTP/1.1) on one
// listener, for the names of a self-signed certificate.
type tlsFixture struct {
	*fixture
	tlsAddr string
	roots   *x509.CertPool
}

func selfSigned(t testing.TB, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, err := testcert.SelfSigned(1, time.Hour, names...)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return cert, pool
}

// startTLSProxy serves rs, with the TLS port 2 on a listener of its own.
func startTLSProxy(t *testing.T, opts Options, rs ...Route) *tlsFixture {
	t.Helper()
	f := startProxy(t, opts, rs...)
	cert, pool := selfSigned(t, "a.test", "b.test", "c.test")
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.ServeTLS(ln, 2, cfg)
	return &tlsFixture{fixture: f, tlsAddr: ln.Addr().String(), roots: pool}
}

// client over HTTP/2 (h2) or HTTP/1.1, with no compression of its own.
func (f *tlsFixture) client(h2 bool) *http.Client {
	addr := f.tlsAddr
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.roots},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		ForceAttemptHTTP2:  h2,
		DisableCompression: true,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// text is a compressible answer of n bytes.
func text(n int) string { return strings.Repeat("hello, compressible world\n", n/26+1)[:n] }

func TestTLSServesHTTP2AndHTTP11WithTheSameSemantics(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		case "/proto":
			fmt.Fprintf(w, "%s %s %s", r.Header.Get("X-Forwarded-Proto"), r.Host, r.Proto)
		case "/events":
			// Far apart: a first event held back for the next is told
			// from a loaded machine's slow one.
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(2 * time.Second):
				}
			}
		default:
			w.Header().Set("X-From", "a")
			io.WriteString(w, "a "+r.URL.RequestURI())
		}
	})
	other := startInstance(t, "c", nil)
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)},
		Route{Port: 2, Hosts: []string{"c.test"}, Set: setOf(t, "c", other)})
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			cl := f.client(h2)
			resp, err := cl.Get("https://a.test/x?y=1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if wantMajor := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != wantMajor || string(body) != "a /x?y=1" || resp.Header.Get("X-From") != "a" {
				t.Errorf("GET: proto %s, %q, X-From %q; want HTTP/%d, \"a /x?y=1\", the instance's fields", resp.Proto, body, resp.Header.Get("X-From"), wantMajor)
			}
			resp, _ = cl.Get("https://a.test/proto")
			body, _ = io.ReadAll(resp.Body)
			if string(body) != "https a.test HTTP/1.1" {
				t.Errorf("the instance saw %q, want https, the Host, and HTTP/1.1", body)
			}
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			resp, err = cl.Post("https://a.test/echo", "application/octet-stream", bytes.NewReader(big))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			if !bytes.Equal(got, big) {
				t.Errorf("1 MiB POST came back as %d bytes", len(got))
			}
			start := time.Now()
			resp, _ = cl.Get("https://a.test/events")
			first := make([]byte, len("data: 0\n\n"))
			io.ReadFull(resp.Body, first)
			if d := time.Since(start); d > time.Second {
				t.Errorf("the first event came after %v; events are passed on as they come", d)
			}
			resp.Body.Close()
			resp, _ = cl.Get("https://b.test/")
			if resp.StatusCode != 404 || resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("a host no service has: %d (X-Request-Id %q), want 404 with an id", resp.StatusCode, resp.Header.Get("X-Request-Id"))
			}
		})
	}
}

func TestCompressionOverBothProtocols(t *testing.T) {
	page := text(20000)
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "tiny")
		case "/no-transform": // in a second line
			w.Header().Set("Content-Type", "text/html")
			w.Header()["Cache-Control"] = []string{"public, max-age=60", "no-transform"}
			io.WriteString(w, page)
		case "/png":
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, page)
		case "/stream":
			// The rest long after: a first piece held back for it is told
			// from a loaded machine's slow one.
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(2 * time.Second):
			}
			io.WriteString(w, page)
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("ETag", `"v1"`)
			io.WriteString(w, page)
		}
	})
	set := setOf(t, "a", in)
	set.SetCompress(true)
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: set}, Route{Port: 1, Set: set})
	decode := map[string]func(io.Reader) ([]byte, error){
		"gzip": func(r io.Reader) ([]byte, error) {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		},
		"zstd": func(r io.Reader) ([]byte, error) {
			zr, err := zstd.NewReader(r)
			if err != nil {
				return nil, err
			}
			defer zr.Close()
			return io.ReadAll(zr)
		},
	}
	for _, h2 := range []bool{true, false} {
		// "\n" separates field lines: a list may come in several.
		for _, ae := range []string{"gzip", "zstd", "gzip;q=0.5, zstd", "br\ngzip"} {
			t.Run(fmt.Sprintf("h2=%v/%q", h2, ae), func(t *testing.T) {
				want := ae
				switch {
				case strings.Contains(ae, ","):
					want = "zstd"
				case strings.Contains(ae, "\n"):
					want = "gzip"
				}
				req, _ := http.NewRequest("GET", "https://a.test/", nil)
				req.Header["Accept-Encoding"] = strings.Split(ae, "\n")
				resp, err := f.client(h2).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.Header.Get("Content-Encoding") != want || resp.Header.Get("Vary") != "Accept-Encoding" || resp.Header.Get("Etag") != `W/"v1"` {
					t.Fatalf("fields %v, want Content-Encoding %s, Vary, a weak ETag", resp.Header, want)
				}
				got, err := decode[want](resp.Body)
				if err != nil || string(got) != page {
					t.Fatalf("decoded %d bytes (%v), want the page's %d", len(got), err, len(page))
				}
			})
		}
		t.Run(fmt.Sprintf("h2=%v/not", h2), func(t *testing.T) {
			for _, tc := range []struct{ path, ae string }{{"/small", "gzip"}, {"/png", "gzip"}, {"/no-transform", "gzip"}, {"/", ""}, {"/", "gzip;q=0"}, {"/", "br"}} {
				req, _ := http.NewRequest("GET", "https://a.test"+tc.path, nil)
				if tc.ae != "" {
					req.Header.Set("Accept-Encoding", tc.ae)
				}
				resp, err := f.client(h2).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if ce := resp.Header.Get("Content-Encoding"); ce != "" {
					t.Errorf("%s with Accept-Encoding %q: compressed (%s)", tc.path, tc.ae, ce)
				}
			}
		})
		t.Run(fmt.Sprintf("h2=%v/stream", h2), func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://a.test/stream", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			start := time.Now()
			resp, err := f.client(h2).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			line := make([]byte, len("first\n"))
			if _, err := io.ReadFull(zr, line); err != nil || string(line) != "first\n" {
				t.Fatalf("first piece %q %v", line, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("the first piece of a compressed stream came after %v; it is flushed before the proxy waits", d)
			}
		})
	}
}

func TestRedirectToHTTPSButACMEChallenges(t *testing.T) {
	in := startInstance(t, "a", nil)
	set := setOf(t, "a", in)
	f := startProxy(t, Options{HTTPChallenge: func(host, path string) ([]byte, bool) {
		return []byte("key-auth " + host + " " + path), path == "/.well-known/acme-challenge/tok"
	}}, Route{Port: 1, Hosts: []string{"a.test"}, Set: set, HTTPSPort: 8443})
	cl := dial(t, f.addr)
	resp, _ := cl.mustDo(get("a.test:80", "/p?q=1"))
	if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://a.test:8443/p?q=1" || resp.Close {
		t.Errorf("plain request: %d Location %q close=%v, want 308 to https://a.test:8443/p?q=1, kept alive", resp.StatusCode, resp.Header.Get("Location"), resp.Close)
	}
	resp, body := cl.mustDo(get("a.test", "/.well-known/acme-challenge/tok"))
	if resp.StatusCode != 200 || body != "key-auth a.test /.well-known/acme-challenge/tok" {
		t.Errorf("challenge: %d %q", resp.StatusCode, body)
	}
	resp, _ = cl.mustDo(get("other.test", "/.well-known/acme-challenge/unknown"))
	if resp.StatusCode != 404 {
		t.Errorf("unknown challenge: %d, want 404", resp.StatusCode)
	}
}

// An HTTP/1.0 request without Host, which the port's default service
// takes, is redirected to the service's own name (as nginx's $host is its
// server_name then), not to "https://:8443/p", which is no URL; with no
// name to give (wildcards alone), it gets 400.
func TestRedirectOfARequestWithoutHost(t *testing.T) {
	in := startInstance(t, "a", nil)
	named := startProxy(t, Options{},
		Route{Port: 1, Hosts: []string{"*.a.test", "a.test"}, Default: true, Set: setOf(t, "a", in), HTTPSPort: 8443})
	resp, _ := dial(t, named.addr).mustDo("GET /p?q=1 HTTP/1.0\r\n\r\n")
	if loc := resp.Header.Get("Location"); resp.StatusCode != 308 || loc != "https://a.test:8443/p?q=1" {
		t.Errorf("HTTP/1.0 without Host: %d Location %q, want 308 to https://a.test:8443/p?q=1", resp.StatusCode, loc)
	}
	wild := startProxy(t, Options{},
		Route{Port: 1, Hosts: []string{"*.b.test"}, Default: true, Set: setOf(t, "b", in), HTTPSPort: 443})
	resp, _ = dial(t, wild.addr).mustDo("GET /p HTTP/1.0\r\n\r\n")
	if loc := resp.Header.Get("Location"); resp.StatusCode != 400 || loc != "" {
		t.Errorf("HTTP/1.0 without Host, no name to redirect to: %d Location %q, want 400", resp.StatusCode, loc)
	}
}

// A TLS terminator in TrustedProxies that says X-Forwarded-Proto: https
// is not redirected to HTTPS again (a loop): its request is served, with
// that X-Forwarded-Proto. Anyone else saying so is redirected as before.
func TestHTTPSSaidByATrustedProxyIsNotRedirected(t *testing.T) {
	in := startInstance(t, "a", nil)
	route := Route{Port: 1, Hosts: []string{"a.test"}, Set: setOf(t, "a", in), HTTPSPort: 8443}
	req := "GET /p HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: HTTPS\r\n\r\n"
	trusted := startProxy(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, route)
	if resp, _ := dial(t, trusted.addr).mustDo(req); resp.StatusCode != 200 {
		t.Errorf("X-Forwarded-Proto: https from a trusted proxy: %d, want the instance's 200", resp.StatusCode)
	}
	other := startProxy(t, Options{}, route)
	if resp, _ := dial(t, other.addr).mustDo(req); resp.StatusCode != 308 {
		t.Errorf("X-Forwarded-Proto: https from a client not trusted: %d, want 308", resp.StatusCode)
	}
	plain := strings.Replace(req, "HTTPS", "http", 1)
	if resp, _ := dial(t, trusted.addr).mustDo(plain); resp.StatusCode != 308 {
		t.Errorf("X-Forwarded-Proto: http from a trusted proxy: %d, want 308", resp.StatusCode)
	}
}

func TestHTTP2RetriesAndStatusesAsHTTP11(t *testing.T) {
	// A dead instance (its port closed) beside a live one: every request
	// is answered by the live one.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	live := startInstance(t, "live", nil)
	set := upstream.NewSet("s", time.Second)
	set.Add(upstream.NewBackend("s", 0, deadAddr))
	set.Add(upstream.NewBackend("s", 1, live.addr()))
	bad := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
		return false
	})
	badSet := upstream.NewSet("bad", time.Second)
	badSet.Add(upstream.NewBackend("bad", 0, bad.ln.Addr().String()))
	stopped := upstream.NewSet("stopped", time.Second)
	stopped.SetStopped(true)
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: set},
		Route{Port: 2, Hosts: []string{"b.test"}, Set: badSet}, Route{Port: 2, Hosts: []string{"c.test"}, Set: stopped})
	cl := f.client(true)
	for i := range 10 {
		resp, err := cl.Get("https://a.test/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "live GET /" {
			t.Fatalf("request %d with one instance dead: %d %q", i, resp.StatusCode, body)
		}
	}
	for host, want := range map[string]int{"b.test": 502, "c.test": 503} {
		resp, err := cl.Get("https://" + host + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || resp.ProtoMajor != 2 {
			t.Errorf("%s over HTTP/2: %d %s, want %d", host, resp.StatusCode, resp.Proto, want)
		}
	}
}
