package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
)

// servedSerial is the serial of the certificate served for host, on a new
// connection that trusts the test CA.
func (h *httpsEnv) servedSerial(host string) (int64, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", h.httpsPort),
		&tls.Config{ServerName: host, RootCAs: h.ca.pool})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// A certificate replaced on disk is served within 5 s, without a restart;
// a new pair that does not match keeps the one in use served.
func TestHTTPSCertificateFilesReloaded(t *testing.T) {
	h := newHTTPSEnv(t, 4)
	h.tlsService("a", "a.test", 1, "")
	d := h.startDaemon()
	h.waitHTTPS(d, "a.test")
	if serial, err := h.servedSerial("a.test"); serial != 1 {
		t.Fatalf("serving serial %d (%v), want 1", serial, err)
	}

	written := time.Now()
	h.writePair("a", 2, "a.test")
	var serial int64
	var err error
	if !waitUntil(5*time.Second, func() bool {
		serial, err = h.servedSerial("a.test")
		time.Sleep(20 * time.Millisecond)
		return serial == 2
	}) {
		t.Fatalf("5s after the certificate files were replaced, serial %d is served (%v); want the new one, 2\n%s", serial, err, d.out.String())
	}
	t.Logf("the new certificate was served %v after it was written", time.Since(written).Round(time.Millisecond))

	// A certificate (serial 3) with a key that is not its own.
	const complaint = "cannot be served"
	before := strings.Count(d.out.String(), complaint)
	cert, _ := h.ca.leaf(t, 3, "a.test")
	_, otherKey := h.ca.leaf(t, 4, "a.test")
	replaceFile(t, h.certFile("a", "key"), otherKey)
	replaceFile(t, h.certFile("a", "crt"), cert)
	if !waitUntil(5*time.Second, func() bool { return strings.Count(d.out.String(), complaint) > before }) {
		t.Errorf("5s after a mismatched pair was written, the log does not say it %s:\n%s", complaint, d.out.String())
	}
	// Past the next poll (every 2 s), which sees both files: the pair in
	// use is served all along, and so is the service.
	c := h.client(false, nil)
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if serial, err := h.servedSerial("a.test"); serial != 2 {
			t.Fatalf("after a mismatched pair was written: serving serial %d (%v), want the one in use, 2\n%s", serial, err, d.out.String())
		}
		if resp, body := h.get(t, c, "a.test", "/"); resp.StatusCode != 200 {
			t.Fatalf("after a mismatched pair was written: GET / %s %q, want 200", resp.Status, body)
		}
	}
	select {
	case <-d.done:
		t.Fatalf("smoothserve exited: %v\n%s", d.err, d.out.String())
	default:
	}
	for _, line := range strings.Split(d.out.String(), "\n") {
		if strings.Contains(line, complaint) || strings.Contains(line, "certificate files changed") {
			t.Logf("log: %s", line)
		}
	}
}

// tlsCounter counts the TLS handshakes of the clients given its config,
// full and resumed.
type tlsCounter struct{ full, resumed atomic.Int64 }

// config trusts ca and keeps sessions to resume, counting handshakes.
func (c *tlsCounter) config(ca *testCA) *tls.Config {
	return &tls.Config{RootCAs: ca.pool, ClientSessionCache: tls.NewLRUClientSessionCache(0),
		VerifyConnection: func(cs tls.ConnectionState) error { // called on resumed handshakes too
			if cs.DidResume {
				c.resumed.Add(1)
			} else {
				c.full.Add(1)
			}
			return nil
		}}
}

// since says how many handshakes resumed since the counts were full0
// and resumed0.
func (c *tlsCounter) since(full0, resumed0 int64) string {
	full, resumed := c.full.Load()-full0, c.resumed.Load()-resumed0
	if full+resumed == 0 {
		return "no new TLS connections"
	}
	return fmt.Sprintf("%d of %d new TLS connections resumed (%.0f%%)", resumed, full+resumed, 100*float64(resumed)/float64(full+resumed))
}

// h2Load sends requests over HTTP/2 from goroutines, each with its own
// Transport and so its own connection: GET / and POSTs of up to 4 KiB to
// /echo, one after another, each judged once; any error is a failure.
// Go's HTTP/2 client sends a request again only when the server refused
// it unprocessed (REFUSED_STREAM, or a stream above a GOAWAY's last stream
// id): a protocol-level resend of a request no server acted on, not a
// retry of one that failed.
type h2Load struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	began    time.Time
	mu       sync.Mutex
	total    int64
	failures []string // every one, with when and which worker
	slowest  time.Duration
}

func startH2Load(h *httpsEnv, host string, workers int, cfg *tls.Config) *h2Load {
	l := &h2Load{stop: make(chan struct{}), began: time.Now()}
	for id := range workers {
		c := h.client(true, cfg)
		l.wg.Go(func() {
			buf := make([]byte, 4096)
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				began := time.Now()
				err := h2Request(h, c, host, n%2 == 1, buf[:(n*1031)%(len(buf)+1)])
				l.record(id, time.Since(began), err)
			}
		})
	}
	return l
}

func (l *h2Load) record(id int, took time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	l.slowest = max(l.slowest, took)
	if err != nil {
		l.failures = append(l.failures, fmt.Sprintf("worker %d at %v: %v", id, time.Since(l.began).Round(time.Millisecond), err))
	}
}

// finish stops the load and waits for the requests in flight.
func (l *h2Load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *h2Load) String() string {
	return fmt.Sprintf("requests=%d failed=%d, slowest %v", l.total, len(l.failures), l.slowest.Round(time.Millisecond))
}

// h2Request sends GET / or, when post, POST /echo with a random body the
// size of buf, and judges the response.
func h2Request(h *httpsEnv, c *http.Client, host string, post bool, buf []byte) error {
	req, err := http.NewRequest("GET", h.url(host, "/"), nil)
	if post {
		rand.Read(buf)
		req, err = http.NewRequest("POST", h.url(host, "/echo"), bytes.NewReader(buf))
	}
	if err != nil {
		return err
	}
	resp, body, err := doRequest(c, req)
	switch {
	case err != nil:
		return err
	case resp.StatusCode != 200 || resp.ProtoMajor != 2:
		return fmt.Errorf("%s %s: %s %s, body %.100q", req.Method, req.URL.Path, resp.Proto, resp.Status, body)
	case post && !bytes.Equal(body, buf):
		return fmt.Errorf("POST /echo of %d bytes: %d bytes back, %s", len(buf), len(body), firstDifference(buf, body))
	case !post && !bytes.HasPrefix(body, []byte("hello from demo")):
		return fmt.Errorf("GET /: body %.100q, want hello from demo...", body)
	}
	return nil
}

// Strict HTTP/1.1 load over TLS (keep-alive, no retries) and HTTP/2 load,
// through 5 rolling restarts and 5 upgrades of smoothserve: no request
// fails. At an upgrade TLS connections are not passed: the old daemon
// finishes them (HTTP/1.1 with Connection: close, HTTP/2 with GOAWAY) and
// the clients connect to the new one; how many of those resume their TLS
// session is logged, not judged.
func TestHTTPSLoadThroughRestartsAndUpgrades(t *testing.T) {
	h := newHTTPSEnv(t, 8)
	h.tlsService("web", "web.test", 3, closesIdleConns)
	in := install(h.env)
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	var h1TLS, h2TLS tlsCounter
	h1 := loadclient.Start(context.Background(), loadclient.Config{
		Addr: fmt.Sprintf("127.0.0.1:%d", h.httpsPort), Host: "web.test", TLS: h1TLS.config(h.ca), Conns: 8,
		Mix:    []loadclient.Kind{loadclient.Get, loadclient.Get, loadclient.Slow, loadclient.Post, loadclient.Stream},
		SlowMS: 300, PostMaxBytes: 64 << 10, StreamLines: 10, StreamMS: 30,
	})
	// Requests after idle gaps of up to 600 ms: at an upgrade, the old
	// daemon answers the next one with Connection: close.
	paused := loadclient.Start(context.Background(), loadclient.Config{
		Addr: fmt.Sprintf("127.0.0.1:%d", h.httpsPort), Host: "web.test", TLS: h1TLS.config(h.ca), Conns: 4,
		Pause: 600 * time.Millisecond, Mix: []loadclient.Kind{loadclient.Get, loadclient.Post, loadclient.Stream},
		PostMaxBytes: 4 << 10, StreamLines: 3, StreamMS: 50,
	})
	h2 := startH2Load(h, "web.test", 4, h2TLS.config(h.ca))
	fail := func(format string, args ...any) {
		t.Helper()
		h1.Stop()
		paused.Stop()
		h2.finish()
		t.Fatalf(format, args...)
	}
	time.Sleep(300 * time.Millisecond)
	for round := 1; round <= 5; round++ {
		if code, out, errOut := in.run("restart", "web"); code != 0 {
			fail("restart %d: smoothtool restart web: exit %d\n%s%s", round, code, out, errOut)
		}
	}
	h1Full, h1Resumed := h1TLS.full.Load(), h1TLS.resumed.Load()
	h2Full, h2Resumed := h2TLS.full.Load(), h2TLS.resumed.Load()
	for i := 1; i <= 5; i++ {
		start := time.Now()
		if i%2 == 1 {
			if _, _, err := upgradeBySIGHUP(in); err != nil {
				fail("upgrade %d: %v", i, err)
			}
		} else {
			old := in.daemonPid()
			if code, out, errOut := in.run("upgrade"); code != 0 {
				fail("upgrade %d: smoothtool upgrade: exit %d\n%s%s", i, code, out, errOut)
			}
			if !waitUntil(10*time.Second, func() bool { return !alive(old) }) {
				fail("upgrade %d: the old smoothserve (pid %d) still runs 10s later", i, old)
			}
		}
		t.Logf("upgrade %d: the old daemon gone after %v", i, time.Since(start).Round(time.Millisecond))
	}
	time.Sleep(300 * time.Millisecond)
	res, pres := h1.Stop(), paused.Stop()
	h2.finish()

	t.Logf("HTTP/1.1 over TLS: %v, slowest %v; TLS handshakes %d, resumed %d", res, res.MaxLatency.Round(time.Millisecond), res.Handshakes, res.Resumed)
	t.Logf("HTTP/1.1 over TLS after pauses: %v; TLS handshakes %d, resumed %d", pres, pres.Handshakes, pres.Resumed)
	t.Logf("HTTP/2: %v", h2)
	t.Logf("after the upgrades: HTTP/1.1 %s; HTTP/2 %s", h1TLS.since(h1Full, h1Resumed), h2TLS.since(h2Full, h2Resumed))
	if err := res.Err(); err != nil {
		t.Errorf("HTTP/1.1 requests over TLS failed across 5 restarts and 5 upgrades: %v", err)
	}
	if err := pres.Err(); err != nil {
		t.Errorf("HTTP/1.1 requests over TLS sent after a pause failed across 5 restarts and 5 upgrades: %v", err)
	}
	for _, k := range []loadclient.Kind{loadclient.Get, loadclient.Slow, loadclient.Post, loadclient.Stream} {
		if res.ByKind[k].OK == 0 {
			t.Errorf("no %v request over TLS completed: the load did not exercise it", k)
		}
	}
	if len(h2.failures) > 0 || h2.total == 0 {
		t.Errorf("HTTP/2 requests failed across 5 restarts and 5 upgrades: %v\n\t%s", h2, strings.Join(h2.failures[:min(len(h2.failures), 20)], "\n\t"))
	}
}
