package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"smoothserve/internal/testcert"
)

// HTTPS with `tls: files`: certificates from a test CA made here, served by
// SNI at HTTPSPort over HTTP/2 and HTTP/1.1, the redirect of plain HTTP,
// certificate files replaced on disk, and WebSockets over TLS. The load
// through restarts and upgrades is in https_load_test.go.

// testCA is a certificate authority made for one test, and the pool that
// trusts it.
type testCA struct {
	ca   *testcert.CA
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca, err := testcert.NewCA("smoothserve e2e test CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca: ca, pool: ca.Pool}
}

// leaf returns a PEM certificate for names with serial, signed by the CA,
// and its PEM private key (ECDSA P-256).
func (ca *testCA) leaf(t *testing.T, serial int64, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.ca.Leaf(serial, 24*time.Hour, names...)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// httpsEnv is an env with HTTPSPort set and a test CA.
type httpsEnv struct {
	*env
	ca        *testCA
	httpsPort int
}

// newHTTPSEnv is newEnv with nports for the proxy and the services, and
// one more for HTTPSPort.
func newHTTPSEnv(t *testing.T, nports int) *httpsEnv {
	t.Helper()
	e := newEnv(t, nports+1)
	h := &httpsEnv{env: e, ca: newTestCA(t), httpsPort: e.ports.next()}
	e.writeMain(fmt.Sprintf("HTTPSPort: %d\n", h.httpsPort))
	return h
}

// tlsService writes a certificate for host (serial 1) to certs/NAME.crt
// and certs/NAME.key, and a service with `tls: files` naming them relative
// to smoothserve.yaml's folder.
func (h *httpsEnv) tlsService(name, host string, count int, extra string) {
	h.t.Helper()
	h.writePair(name, 1, host)
	h.service(name, host, count, fmt.Sprintf("tls: files\ntls_cert: ./certs/%s.crt\ntls_key: ./certs/%s.key\n%s", name, name, extra))
}

// writePair puts a new certificate for names, with serial, and its key at
// certs/NAME.crt and certs/NAME.key, the key first.
func (h *httpsEnv) writePair(name string, serial int64, names ...string) {
	h.t.Helper()
	cert, key := h.ca.leaf(h.t, serial, names...)
	replaceFile(h.t, h.certFile(name, "key"), key)
	replaceFile(h.t, h.certFile(name, "crt"), cert)
}

func (h *httpsEnv) certFile(name, ext string) string {
	return filepath.Join(h.dir, "certs", name+"."+ext)
}

// replaceFile writes data beside path and renames it over path, mode 0600.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func (h *httpsEnv) url(host, path string) string {
	return fmt.Sprintf("https://%s:%d%s", host, h.httpsPort, path)
}

// dialLocal dials 127.0.0.1 at addr's port, whatever its host: the test
// names resolve nowhere.
func dialLocal(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
}

// client is an HTTPS client trusting the test CA with cfg's other
// settings (nil: none), which follows no redirect: HTTP/2 when h2 (ALPN h2
// and http/1.1, as browsers offer), else HTTP/1.1 alone.
func (h *httpsEnv) client(h2 bool, cfg *tls.Config) *http.Client {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.RootCAs = h.ca.pool
	tr := &http.Transport{TLSClientConfig: cfg, DialContext: dialLocal, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	h.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// doRequest sends req with c and reads the whole response.
func doRequest(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, body, fmt.Errorf("%s %s: status %d, reading the body: %w", req.Method, req.URL, resp.StatusCode, err)
	}
	return resp, body, nil
}

func (h *httpsEnv) get(t *testing.T, c *http.Client, host, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", h.url(host, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body, err := doRequest(c, req)
	if err != nil {
		t.Fatalf("GET %s: %v", req.URL, err)
	}
	return resp, body
}

// waitHTTPS waits until GET / for host answers 200 over HTTPS.
func (h *httpsEnv) waitHTTPS(d *daemon, host string) {
	h.t.Helper()
	c := h.client(false, nil)
	var last string
	ok := waitUntil(15*time.Second, func() bool {
		req, _ := http.NewRequest("GET", h.url(host, "/"), nil)
		resp, body, err := doRequest(c, req)
		if err == nil && resp.StatusCode == 200 {
			return true
		}
		last = fmt.Sprintf("%v %q", err, body)
		time.Sleep(20 * time.Millisecond)
		return false
	})
	if !ok {
		h.t.Fatalf("GET %s did not answer 200 within 15s; last: %s\n%s", h.url(host, "/"), last, d.out.String())
	}
}

// headerEchoEnv, set in a service's env, makes the test binary, started as
// its instance, serve instead of running tests: it answers every request
// with the protocol and headers it got, which the demo does not show.
const headerEchoEnv = "SMOOTHSERVE_E2E_HEADER_ECHO"

func init() {
	if os.Getenv(headerEchoEnv) != "1" {
		return
	}
	port := ""
	for _, a := range os.Args[1:] {
		if p, ok := strings.CutPrefix(a, "-port="); ok {
			port = p
		}
	}
	err := http.ListenAndServe("127.0.0.1:"+port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s\n", r.Method, r.URL, r.Proto)
		r.Header.Write(w)
	}))
	fmt.Fprintln(os.Stderr, "header echo:", err)
	os.Exit(1)
}

// headerEchoService is a TLS service whose instance echoes headers.
func (h *httpsEnv) headerEchoService(name, host string) {
	h.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		h.t.Fatal(err)
	}
	h.writePair(name, 1, host)
	h.serviceOf(exe, name, host, 1, fmt.Sprintf("tls: files\ntls_cert: ./certs/%s.crt\ntls_key: ./certs/%s.key\nenv:\n  %s: \"1\"\n",
		name, name, headerEchoEnv))
}

// Two TLS services at one HTTPSPort, each name with its own certificate
// and service, over HTTP/2 and HTTP/1.1.
func TestHTTPSServesEachNameItsCertificateAndService(t *testing.T) {
	h := newHTTPSEnv(t, 8)
	h.tlsService("a", "a.test", 1, "env:\n  DEMO_VERSION: a\n")
	h.tlsService("b", "b.test", 1, "env:\n  DEMO_VERSION: b\n")
	h.headerEchoService("hdr", "hdr.test")
	d := h.startDaemon()
	for _, host := range []string{"a.test", "b.test", "hdr.test"} {
		h.waitHTTPS(d, host)
	}
	for _, p := range []struct {
		name string
		h2   bool
	}{{"h2", true}, {"http1.1", false}} {
		t.Run(p.name, func(t *testing.T) {
			c := h.client(p.h2, nil)
			major := map[bool]int{true: 2, false: 1}[p.h2]
			for _, name := range []string{"a", "b"} {
				resp, body := h.get(t, c, name+".test", "/")
				names := resp.TLS.PeerCertificates[0].DNSNames
				if resp.StatusCode != 200 || resp.ProtoMajor != major || !bytes.Contains(body, []byte("version="+name+"\n")) ||
					!slices.Equal(names, []string{name + ".test"}) {
					t.Errorf("GET https://%s.test/: %s %s, certificate for %q, body %q; want 200 over HTTP/%d from service %s (version=%s), certificate for %s.test",
						name, resp.Proto, resp.Status, names, body, major, name, name, name)
				}
			}
			// The instance learns that the client came over HTTPS, and is
			// spoken to over HTTP/1.1 whatever the client spoke.
			resp, body := h.get(t, c, "hdr.test", "/x")
			if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("GET /x HTTP/1.1\n")) ||
				!bytes.Contains(body, []byte("\nX-Forwarded-Proto: https\r\n")) {
				t.Errorf("GET https://hdr.test/x over %s: %s, the instance got:\n%s\nwant GET /x over HTTP/1.1 with X-Forwarded-Proto: https",
					resp.Proto, resp.Status, body)
			}
			postEcho(t, h, c, "a.test", 1<<20)
		})
	}
	t.Run("events over h2", func(t *testing.T) { eventsArriveAsSent(t, h, h.client(true, nil)) })

	// A name no service has: no certificate, whatever the client accepts.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", fmt.Sprintf("127.0.0.1:%d", h.httpsPort),
		&tls.Config{ServerName: "c.test", InsecureSkipVerify: true})
	if err == nil {
		cs := conn.ConnectionState()
		conn.Close()
		t.Errorf("TLS handshake for c.test, which no service names, succeeded with a certificate for %q; want it to fail",
			cs.PeerCertificates[0].DNSNames)
	} else {
		t.Logf("handshake for c.test: %v", err)
	}

	// A stopped service answers 503 with Retry-After over HTTP/2; the other
	// one is served.
	if code, out, errOut := h.tool("stop", "b"); code != 0 {
		t.Fatalf("smoothtool stop b: exit %d\n%s%s", code, out, errOut)
	}
	c := h.client(true, nil)
	resp, body := h.get(t, c, "b.test", "/")
	if resp.StatusCode != 503 || resp.ProtoMajor != 2 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET https://b.test/ over %s after smoothtool stop b: %s, Retry-After %q, body %q; want 503 over HTTP/2 with Retry-After",
			resp.Proto, resp.Status, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := h.get(t, c, "a.test", "/"); resp.StatusCode != 200 {
		t.Errorf("GET https://a.test/ after smoothtool stop b: %s %q, want 200", resp.Status, body)
	}
}

// postEcho POSTs n random bytes to host's /echo and wants them back.
func postEcho(t *testing.T, h *httpsEnv, c *http.Client, host string, n int) {
	t.Helper()
	sent := make([]byte, n)
	rand.Read(sent)
	req, err := http.NewRequest("POST", h.url(host, "/echo"), bytes.NewReader(sent))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, got, err := doRequest(c, req)
	if err != nil {
		t.Fatalf("POST %d bytes to %s: %v", n, req.URL, err)
	}
	if resp.StatusCode != 200 || !bytes.Equal(got, sent) {
		t.Errorf("POST %d bytes to %s over %s: %s, %d bytes back, %s; want them back exactly",
			n, req.URL, resp.Proto, resp.Status, len(got), firstDifference(sent, got))
	}
}

func firstDifference(want, got []byte) string {
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	return fmt.Sprintf("equal for the first %d bytes", min(len(want), len(got)))
}

// eventsArriveAsSent reads /events?n=5&ms=100 and wants each event when
// the instance sent it: the first about 400 ms before the last.
func eventsArriveAsSent(t *testing.T, h *httpsEnv, c *http.Client) {
	sent := time.Now()
	resp, err := c.Get(h.url("a.test", "/events?n=5&ms=100"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events: %s %s, Content-Type %q; want 200 over HTTP/2, text/event-stream", resp.Proto, resp.Status, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	var at []time.Duration
	for text := ""; ; {
		line, err := br.ReadString('\n')
		text += line
		if err == io.EOF && text == "" {
			break
		} else if err != nil {
			t.Fatalf("GET /events: after %d events: %v", len(at), err)
		}
		if strings.HasSuffix(text, "\n\n") {
			if want := fmt.Sprintf("data: event %d/5 ", len(at)+1); !strings.Contains(text, want) {
				t.Errorf("event %d is %q, want it to say %q", len(at)+1, text, want)
			}
			at, text = append(at, time.Since(sent)), ""
		}
	}
	t.Logf("events after %v", at)
	if len(at) != 5 {
		t.Fatalf("%d events, want 5", len(at))
	}
	// Held back, they come together; a loaded machine may let this test
	// read the first one late, not the last one early.
	if gap := at[4] - at[0]; gap < 200*time.Millisecond {
		t.Errorf("the first event came %v before the last; they were sent 400 ms apart: held back and sent together", gap)
	}
}

// plainGet sends GET path to addr over plain HTTP on its own connection.
func plainGet(t *testing.T, addr, host, path string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("plain GET %s for %s: %v", path, host, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("plain GET %s for %s: %s, reading the body: %v", path, host, resp.Status, err)
	}
	return resp, string(body)
}

// Plain HTTP for a TLS service's hosts is redirected to HTTPSPort, but
// for ACME challenges and for a service with https_redirect: false.
func TestHTTPSRedirect(t *testing.T) {
	h := newHTTPSEnv(t, 6)
	h.tlsService("a", "a.test", 1, "")
	h.tlsService("p", "p.test", 1, "https_redirect: false\nenv:\n  DEMO_VERSION: p\n")
	d := h.startDaemon()
	h.waitHTTPS(d, "a.test")
	h.waitHTTPS(d, "p.test")

	// The port is kept in Location since HTTPSPort is not 443 (a test
	// cannot listen on 443): the port-less form is not checked here.
	want := fmt.Sprintf("https://a.test:%d/a?b=1", h.httpsPort)
	for _, host := range []string{"a.test", fmt.Sprintf("a.test:%d", h.proxyPort)} {
		resp, body := plainGet(t, h.proxyAddr(), host, "/a?b=1")
		if resp.StatusCode != 308 || resp.Header.Get("Location") != want {
			t.Errorf("plain GET /a?b=1 with Host %s: %s, Location %q, body %q; want 308 to %s",
				host, resp.Status, resp.Header.Get("Location"), body, want)
		}
	}
	resp, body := plainGet(t, h.proxyAddr(), "a.test", "/.well-known/acme-challenge/x")
	if resp.StatusCode != 404 {
		t.Errorf("plain GET /.well-known/acme-challenge/x for a.test: %s, Location %q, body %q; want 404 (not redirected, no challenge pending)",
			resp.Status, resp.Header.Get("Location"), body)
	}
	resp, body = plainGet(t, h.proxyAddr(), "p.test", "/")
	if resp.StatusCode != 200 || !strings.Contains(body, "version=p\n") {
		t.Errorf("plain GET / for p.test (https_redirect: false): %s, Location %q, body %q; want 200 from the service",
			resp.Status, resp.Header.Get("Location"), body)
	}
}

// WebSocket over TLS (wss, ALPN http/1.1) echoes.
func TestHTTPSWebSocket(t *testing.T) {
	h := newHTTPSEnv(t, 4)
	h.tlsService("a", "a.test", 1, "")
	d := h.startDaemon()
	h.waitHTTPS(d, "a.test")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	url := fmt.Sprintf("wss://a.test:%d/ws", h.httpsPort)
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: h.client(false, nil)})
	if err != nil {
		t.Fatalf("WebSocket to %s: %v", url, err)
	}
	defer ws.CloseNow()
	if resp.StatusCode != 101 || resp.Header.Get("Demo-Pid") == "" {
		t.Errorf("WebSocket upgrade: %s, Demo-Pid %q; want 101 from the demo", resp.Status, resp.Header.Get("Demo-Pid"))
	}
	for i := range 3 {
		msg := fmt.Sprintf("hi %d", i)
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("WebSocket write %q: %v", msg, err)
		}
		if _, got, err := ws.Read(ctx); err != nil || string(got) != "echo: "+msg {
			t.Fatalf("WebSocket read %q %v, want %q", got, err, "echo: "+msg)
		}
	}
	if err := ws.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Errorf("WebSocket close: %v", err)
	}
}
