package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"smoothserve/internal/testcert"
)

// The HTTPS rows: every proxy serves the same certificate, made at the
// start of the bench (ECDSA P-256, self-signed, for localhost and
// 127.0.0.1), over TLS 1.3 with TLS_AES_128_GCM_SHA256 (what Go, and so
// smoothserve and Caddy, choose on a CPU with AES instructions; nginx and
// HAProxy are told to), on a port of its own beside its plain one. The
// clients reach it as https://localhost:PORT: smoothserve chooses the
// certificate by SNI, which a client sends for a name, not an address.

// tlsHost is the name the clients use, the certificate's and smoothserve's
// server_name.
const tlsHost = "localhost"

// tlsFiles are the certificate and key every proxy serves.
type tlsFiles struct {
	cert, key string // PEM
	pem       string // both in one file (HAProxy's crt)
}

// makeCert writes a new self-signed certificate and its key into dir.
func makeCert(dir string) (tlsFiles, error) {
	f := tlsFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"), pem: filepath.Join(dir, "bench.pem")}
	if err := mkdirs(dir); err != nil {
		return f, err
	}
	certPEM, keyPEM, err := testcert.SelfSigned(0, 7*24*time.Hour, tlsHost, "127.0.0.1")
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		path string
		data []byte
	}{{f.cert, certPEM}, {f.key, keyPEM}, {f.pem, append(certPEM, keyPEM...)}} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return f, err
		}
	}
	return f, nil
}

// tlsURL is the https URL of a proxy's TLS port.
func tlsURL(port int) string { return fmt.Sprintf("https://%s:%d", tlsHost, port) }

// checkTLS checks that url serves the demo over TLS 1.3 with HTTP/1.1 and
// with HTTP/2, and describes what a Go client negotiated. An error for h2
// alone is h2Err: the proxy's HTTP/2 row is then left out, not the bench.
func checkTLS(url string) (desc string, h2Err, err error) {
	for _, h2 := range []bool{false, true} {
		d, e := tlsGet(url, h2)
		switch {
		case e != nil && h2:
			return desc, e, nil
		case e != nil:
			return desc, nil, e
		case h2:
			desc = d
		}
	}
	return desc, nil, nil
}

// tlsGet sends GET url/ over TLS 1.3, offering h2 or http/1.1 only, and
// checks the protocol and the demo's greeting.
func tlsGet(url string, h2 bool) (string, error) {
	proto, want := "http/1.1", 1
	if h2 {
		proto, want = "h2", 2
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{proto}},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := client.Get(url + "/")
	if err != nil {
		return "", fmt.Errorf("%s: %w", proto, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: %w", proto, err)
	case resp.ProtoMajor != want:
		return "", fmt.Errorf("%s offered, %s answered", proto, resp.Proto)
	case resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "hello from demo"):
		return "", fmt.Errorf("%s: GET /: %s %q", proto, resp.Status, body)
	case resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13:
		return "", fmt.Errorf("%s: not TLS 1.3", proto)
	}
	return fmt.Sprintf("%s, %s, %s", tls.VersionName(resp.TLS.Version), tls.CipherSuiteName(resp.TLS.CipherSuite), resp.TLS.NegotiatedProtocol), nil
}

// waitTLS waits until each proxy serves the demo over TLS, and notes what
// it negotiated and whether it has HTTP/2.
func waitTLS(proxies []*proxy, timeout time.Duration) error {
	for _, p := range proxies {
		deadline := time.Now().Add(timeout)
		for {
			desc, h2Err, err := checkTLS(p.tlsURL)
			if err == nil {
				p.tlsDesc = desc
				if h2Err != nil {
					p.noH2 = h2Err.Error()
					fmt.Fprintf(os.Stderr, "bench: %s on %s: no HTTP/2: %v\n", p.name, p.tlsURL, h2Err)
				}
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s on %s: %w", p.name, p.tlsURL, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// tlsNote describes what each proxy negotiated with a Go client, for the
// HTTPS tables.
func tlsNote(proxies []*proxy) string {
	var s []string
	for _, p := range proxies {
		if p.tlsDesc != "" {
			s = append(s, p.name+" "+p.tlsDesc)
		}
	}
	return "negotiated with a Go client offering h2: " + strings.Join(s, "; ")
}
