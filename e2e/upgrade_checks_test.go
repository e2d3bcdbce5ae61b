package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/h2raw"
	"smoothserve/internal/tcptest"
)

// getOnNew is once for a GET on a new connection to network/addr.
func getOnNew(network, addr, host, path string) func() error {
	return func() error {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err != nil {
			return err
		}
		return tcptest.GetOK(c, host, path)
	}
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
	type check struct {
		name string
		load *tcptest.Clients
	}
	checks := []check{
		{"admin /health", tcptest.StartClients(t, 2, getOnNew("tcp", admin, "check", "/health"))},
		{"control socket status", tcptest.StartClients(t, 1, getOnNew("unix", filepath.Join(in.dir, "smoothserve.sock"), "check", "/v1/status"))},
		{"plain HTTP/1.1", tcptest.StartClients(t, 2, getOnNew("tcp", e.proxyAddr(), "plain.test", "/"))},
		{"HTTP/1.1 over TLS", tcptest.StartClients(t, 2, func() error {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", httpsAddr, tlsConfig("http/1.1"))
			if err != nil {
				return err
			}
			return tcptest.GetOK(c, "web.test", "/")
		})},
		{"HTTP/2", tcptest.StartClients(t, 2, func() error {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", httpsAddr, tlsConfig("h2"))
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			return h2raw.Open(c, "web.test") // a GET on stream 1, answered 200; a refusal by GOAWAY fails it
		})},
	}
	// HTTP/2 clients keeping 8 requests in flight, as a browser loading a
	// page does: none refused (RFC 9113's two GOAWAYs), none lost.
	stopBursts := make(chan struct{})
	var streams atomic.Int64
	checks = append(checks, check{"HTTP/2, 8 requests in flight", tcptest.StartClients(t, 2, func() error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", httpsAddr, tlsConfig("h2"))
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b := h2raw.RunBurst(c, "web.test", 8, stopBursts) // until a GOAWAY, then a new connection
		streams.Add(int64(b.Answered))
		if b.Refused > 0 || b.Lost > 0 || b.NotOK > 0 || b.Err != nil {
			return fmt.Errorf("%d answered, %d refused, %d lost, %d not 200 (%v)", b.Answered, b.Refused, b.Lost, b.NotOK, b.Err)
		}
		return nil
	})})
	time.Sleep(200 * time.Millisecond)
	for i := range upgrades {
		if _, _, err := upgradeBySIGHUP(in); err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err) // the clients stop at the test's end
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stopBursts)
	t.Logf("HTTP/2 bursts: %d streams answered", streams.Load())
	for _, c := range checks {
		got := c.load.Stop()
		t.Logf("%s through %d upgrades: %v", c.name, upgrades, got)
		if got.Failed > 0 || got.Asked == 0 {
			t.Errorf("%s through %d upgrades: %v", c.name, upgrades, got)
		}
	}
}
