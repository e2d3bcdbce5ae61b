package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/h2raw"
)

// checkLoad asks one thing again and again, each time on a new
// connection, as a load balancer's health checks and smoothtool's calls
// do, and counts what was not answered.
type checkLoad struct {
	asked, failed atomic.Int64
	first         atomic.Pointer[error] // the first failure's error
	quit          chan struct{}
	wg            sync.WaitGroup
}

// startChecks runs n clients that call once again and again until stop.
func startChecks(n int, once func() error) *checkLoad {
	l := &checkLoad{quit: make(chan struct{})}
	for range n {
		l.wg.Go(func() {
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				l.asked.Add(1)
				if err := once(); err != nil {
					l.failed.Add(1)
					l.first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	return l
}

// getOn sends GET path for host on c, a new connection, and wants a 200;
// it closes c.
func getOn(c net.Conn, host, path string) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// getOnNew is once for a GET on a new connection to network/addr.
func getOnNew(network, addr, host, path string) func() error {
	return func() error {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err != nil {
			return err
		}
		return getOn(c, host, path)
	}
}

func (l *checkLoad) stop() string {
	close(l.quit)
	l.wg.Wait()
	s := fmt.Sprintf("%d asked, %d not answered", l.asked.Load(), l.failed.Load())
	if err := l.first.Load(); err != nil {
		s += fmt.Sprintf(" (the first: %v)", *err)
	}
	return s
}

// Through upgrades, every connection the old daemon accepted is answered,
// each a new one: the admin listener's /health and the control socket's
// status (a load balancer's checks, smoothtool's calls), the proxy's plain
// port, and the HTTPS port over HTTP/1.1 and HTTP/2. The old daemon
// accepted some as it stopped accepting, or had them in their TLS
// handshake: it used to close those unanswered, about one in a hundred at
// each hand-over.
func TestNewConnectionsAreAnsweredThroughUpgrades(t *testing.T) {
	const upgrades = 6
	e := newEnv(t, 12)
	h := &httpsEnv{env: e, ca: newTestCA(t), httpsPort: e.ports.next()}
	admin := "127.0.0.1:" + strconv.Itoa(e.ports.next())
	e.writeMain(fmt.Sprintf("HTTPSPort: %d\nAdminAddr: %s\n", h.httpsPort, admin))
	h.tlsService("web", "web.test", 2, closesIdleConns)
	e.service("plain", "plain.test", 1, closesIdleConns)
	in := installAndStart(e)

	httpsAddr := "127.0.0.1:" + strconv.Itoa(h.httpsPort)
	tlsConfig := func(proto string) *tls.Config {
		return &tls.Config{RootCAs: h.ca.pool, ServerName: "web.test", NextProtos: []string{proto}}
	}
	checks := []struct {
		name string
		load *checkLoad
	}{
		{"admin /health", startChecks(2, getOnNew("tcp", admin, "check", "/health"))},
		{"control socket status", startChecks(1, getOnNew("unix", filepath.Join(in.dir, "smoothserve.sock"), "check", "/v1/status"))},
		{"plain HTTP/1.1", startChecks(2, getOnNew("tcp", e.proxyAddr(), "plain.test", "/"))},
		{"HTTP/1.1 over TLS", startChecks(2, func() error {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", httpsAddr, tlsConfig("http/1.1"))
			if err != nil {
				return err
			}
			return getOn(c, "web.test", "/")
		})},
		{"HTTP/2", startChecks(2, func() error {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", httpsAddr, tlsConfig("h2"))
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			return h2raw.Open(c, "web.test") // a GET on stream 1, answered 200; a refusal by GOAWAY fails it
		})},
	}
	stopAll := func() {
		for _, c := range checks {
			c.load.stop()
		}
	}
	time.Sleep(200 * time.Millisecond)
	for i := range upgrades {
		if _, _, err := upgradeBySIGHUP(in); err != nil {
			stopAll()
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range checks {
		s := c.load.stop()
		t.Logf("%s through %d upgrades: %s", c.name, upgrades, s)
		if c.load.failed.Load() > 0 || c.load.asked.Load() == 0 {
			t.Errorf("%s through %d upgrades: %s", c.name, upgrades, s)
		}
	}
}
