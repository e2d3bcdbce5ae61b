package proxy

import (
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smoothserve/accesslog"
)

// README: "the client is the one a proxy in TrustedProxies named" and the
// bytes are "head included". Over HTTP/1.1 both hold; over HTTP/2 the
// bridge logs the proxy's own address and the body bytes alone.
func TestRegressH2LogLikeHTTP11(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	log, err := accesslog.Open(path, accesslog.Combined)
	if err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	f := startTLSProxy(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in), AccessLog: log})
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest("GET", "https://a.test/", nil)
		req.Header.Set("X-Forwarded-For", "9.9.9.9")
		resp, err := f.client(h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	time.Sleep(300 * time.Millisecond)
	f.srv.Close()
	log.Close()
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, "9.9.9.9 ") {
			t.Errorf("client not the one the trusted proxy named: %s", line)
		}
		// Over HTTP/2 the bytes are the body's: the head goes HPACK-coded
		// by net/http (README).
		if strings.Contains(line, "HTTP/2.0") && !strings.Contains(line, `" 200 5 "`) {
			t.Errorf("bytes not the body's 5: %s", line)
		}
	}
}

// Trailers from the instance reach an HTTP/2 client.
func TestRegressH2Trailers(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	})
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
	resp, err := f.client(true).Get("https://a.test/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("trailer %v", resp.Trailer)
	}
}
