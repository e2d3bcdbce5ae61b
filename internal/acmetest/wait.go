package acmetest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// pollEvery is the pause between two readiness probes.
const pollEvery = 50 * time.Millisecond

// udpFree reports whether nothing has port bound for UDP on 127.0.0.1;
// the DNS server needs it besides TCP, which freeport checked.
func udpFree(port int) bool {
	c, err := net.ListenPacket("udp", addr(port))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitDNS waits until the DNS server at dnsAddr answers an A query over
// TCP (the transport pebble uses) with 127.0.0.1. A real answer, not just
// an accepted connection, shows it is the server we started.
func waitDNS(p *proc, dnsAddr string, deadline time.Time) error {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", dnsAddr)
		},
	}
	var last error
	for {
		if err := p.exited(); err != nil {
			return err
		}
		if strings.Contains(p.output(), "address already in use") {
			return fmt.Errorf("DNS server at %s: %w", dnsAddr, errPortTaken)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ips, err := r.LookupHost(ctx, "ready.acmetest.test.")
		cancel()
		if err == nil && slices.Contains(ips, "127.0.0.1") {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("answered %v, want 127.0.0.1", ips)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("DNS server at %s not ready after %v: %v", dnsAddr, readyTimeout, last)
		}
		time.Sleep(pollEvery)
	}
}

// waitPebble waits until pebble's directory answers and then reads the
// issuer root from its management interface. Both listeners are verified
// against our own CA, so an answer can only come from the pebble we started.
func waitPebble(s *Server, deadline time.Time) error {
	tr := &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: s.CARootPool()},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	var last error
	for {
		if err := s.pebble.exited(); err != nil {
			return err
		}
		if last = probeDirectory(c, s.Directory); last == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ACME directory %s not ready after %v: %v", s.Directory, readyTimeout, last)
		}
		time.Sleep(pollEvery)
	}
	rootURL := s.ManagementURL + "/roots/0"
	body, err := get(c, rootURL)
	if err != nil {
		return err
	}
	if s.issuerRoot, err = parseRoot(body); err != nil {
		return fmt.Errorf("GET %s: %w", rootURL, err)
	}
	s.issuerRootPEM = body
	return nil
}

// probeDirectory checks that url serves an ACME directory.
func probeDirectory(c *http.Client, url string) error {
	body, err := get(c, url)
	if err != nil {
		return err
	}
	var dir struct {
		NewOrder string `json:"newOrder"`
	}
	if err := json.Unmarshal(body, &dir); err != nil || dir.NewOrder == "" {
		return fmt.Errorf("GET %s: not an ACME directory: %q", url, truncate(string(body), 200))
	}
	return nil
}

// get returns the body of a 200 answer to GET url.
func get(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %q", url, resp.Status, truncate(string(body), 200))
	}
	return body, nil
}
