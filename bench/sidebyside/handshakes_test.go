package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/testcert"
)

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := percentiles(ds); p50 != 51*time.Millisecond || p99 != 100*time.Millisecond {
		t.Errorf("percentiles(1..100 ms) = %s, %s; want 51ms, 100ms", p50, p99)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("percentiles sorted its argument")
	}
	if p50, p99 := percentiles(nil); p50 != 0 || p99 != 0 {
		t.Errorf("percentiles(nil) = %s, %s; want 0, 0", p50, p99)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// A run's connections become a wrkResult: a request per connection, each
// failure under its kind.
func TestHandshakeRunResult(t *testing.T) {
	var r handshakeRun
	for range 30 {
		r.count(true, "", nil, 2*time.Millisecond)
	}
	r.count(false, "", nil, 4*time.Millisecond)
	r.count(false, "connect", errors.New("connection refused"), 0)
	r.count(false, "read", timeoutErr{}, 0)
	r.count(false, "read", errors.New("handshake: bad record MAC"), 0)
	r.count(false, "non2xx", errors.New("GET /: 502 Bad Gateway"), 0)
	var total handshakeRun
	total.add(r)
	total.d = 2 * time.Second
	got := total.result()
	want := wrkResult{requests: 31, rps: 15.5, p50: 2 * time.Millisecond, p99: 4 * time.Millisecond, connect: 1, read: 1, timeout: 1, non2xx: 1}
	if got != want {
		t.Errorf("result = %+v, want %+v", got, want)
	}
	if total.resumed != 30 || total.firstErr != "connection refused" {
		t.Errorf("resumed %d, first error %q; want 30, connection refused", total.resumed, total.firstErr)
	}
}

// Against a Go TLS server: without a session cache no connection resumes,
// with one primed every connection does.
func TestHandshakeLoad(t *testing.T) {
	certPEM, keyPEM, err := testcert.SelfSigned(0, time.Hour, tlsHost, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from demo\n")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr, err := tlsAddr(strings.Replace(srv.URL, "127.0.0.1", tlsHost, 1))
	if err != nil || addr != srv.Listener.Addr().String() {
		t.Fatalf("tlsAddr = %q, %v; want %s", addr, err, srv.Listener.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// 2 s: 64 handshakes at once under -race on a busy 2-core machine can
	// take longer than 300 ms each, and the run would count none.
	const loadFor = 2 * time.Second
	full := handshakeLoad(ctx, addr, handshakeConfig(nil), loadFor)
	if full.conns == 0 || full.resumed != 0 || full.result().errors() != 0 {
		t.Errorf("full: %d connections, %d resumed, %+v (first failure %q); want some, none resumed, no error",
			full.conns, full.resumed, full.result(), full.firstErr)
	}
	cfg := handshakeConfig(tls.NewLRUClientSessionCache(4))
	if resumed, _, err := handshakeOnce(ctx, addr, cfg); resumed || err != nil {
		t.Fatalf("priming: resumed %v, %v; want a full handshake", resumed, err)
	}
	res := handshakeLoad(ctx, addr, cfg, loadFor)
	if res.conns == 0 || res.resumed != res.conns || res.result().errors() != 0 {
		t.Errorf("resumed: %d connections, %d resumed, %+v (first failure %q); want all resumed, no error",
			res.conns, res.resumed, res.result(), res.firstErr)
	}
}

// The resumed table gives the resumed part and each proxy's resumed ÷
// full beside the usual columns.
func TestHandshakeTableColumns(t *testing.T) {
	tb := &table{base: "nginx", extra: []string{"resumed", "req/s ÷ its full"}}
	tb.row("smoothserve").add(wrkResult{rps: 1200, p50: time.Millisecond, p99: 4 * time.Millisecond}, 2048)
	tb.row("nginx").add(wrkResult{rps: 1000, p50: time.Millisecond, p99: 5 * time.Millisecond}, 1024)
	tb.row("smoothserve").extra = map[string]string{"resumed": "100.0%", "req/s ÷ its full": "1.30"}
	md := tb.markdown()
	for _, want := range []string{
		"|  | req/s (median) | p50 | p99 | req/s ÷ nginx | p99 ÷ nginx | peak RSS | resumed | req/s ÷ its full | errors | req/s per round |",
		"| smoothserve | 1200 | 1.00 ms | 4.00 ms | 1.20 | 0.80 | 2.0 MiB | 100.0% | 1.30 | 0 | 1200 |",
		"| nginx | 1000 | 1.00 ms | 5.00 ms | 1.00 | 1.00 | 1.0 MiB | – | – | 0 | 1000 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks\n%s\nin\n%s", want, md)
		}
	}
}

// The HTTP/2 table compares smoothserve with Caddy and HAProxy too.
func TestTableAlsoBases(t *testing.T) {
	tb := &table{base: "nginx", alsoBases: []string{"Caddy", "HAProxy"}}
	for name, rps := range map[string]float64{"smoothserve": 3000, "nginx": 6000, "HAProxy": 10000, "Caddy": 1500} {
		tb.row(name).add(wrkResult{rps: rps, p99: time.Millisecond}, 0)
	}
	md := tb.markdown()
	if !strings.Contains(md, "| req/s ÷ nginx | p99 ÷ nginx | req/s ÷ Caddy | req/s ÷ HAProxy | peak RSS |") {
		t.Errorf("no columns for Caddy and HAProxy in\n%s", md)
	}
	for _, want := range []string{"| smoothserve | 3000 | 0 µs | 1.00 ms | 0.50 | 1.00 | 2.00 | 0.30 |", "| Caddy | 1500 | 0 µs | 1.00 ms | 0.25 | 1.00 | 1.00 | 0.15 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks\n%s\nin\n%s", want, md)
		}
	}
}
