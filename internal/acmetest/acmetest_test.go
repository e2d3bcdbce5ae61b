package acmetest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"smoothserve/internal/acmetest"
	"smoothserve/internal/freeport"
	"smoothserve/internal/syncbuf"
)

const lifetime = time.Hour

func TestPebbleIssuesACertificateOverHTTP01AndTLSALPN01(t *testing.T) {
	base, err := freeport.Range(2)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv := acmetest.Start(t, acmetest.Options{HTTPPort: base, TLSPort: base + 1, CertLifetime: lifetime})
	t.Logf("pebble ready in %v at %s", time.Since(start).Round(time.Millisecond), srv.Directory)
	if srv.HTTPPort != base || srv.TLSPort != base+1 {
		t.Fatalf("challenge ports %d, %d; want %d, %d", srv.HTTPPort, srv.TLSPort, base, base+1)
	}
	acmeRoots := poolFromFile(t, srv.CARootFile)
	issuerPEM, err := os.ReadFile(srv.IssuerRootFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(issuerPEM, srv.IssuerRoot()) {
		t.Fatalf("IssuerRootFile holds %q, IssuerRoot returns %q", issuerPEM, srv.IssuerRoot())
	}
	issuerRoots := poolFromFile(t, srv.IssuerRootFile)

	for _, http01 := range []bool{true, false} {
		name := map[bool]string{true: "HTTP-01", false: "TLS-ALPN-01"}[http01]
		t.Run(name, func(t *testing.T) {
			orders, issued := srv.Orders(), srv.Issued()
			cfg, issuer := newCertmagic(t, srv, acmeRoots, http01)
			tlsAddr := "127.0.0.1:" + strconv.Itoa(srv.TLSPort)
			alpnChallenges := serveTLS(t, tlsAddr, cfg.TLSConfig())
			var httpChallenges atomic.Int32
			if http01 {
				h := issuer.HTTPChallengeHandler(http.NotFoundHandler())
				serveHTTP(t, "127.0.0.1:"+strconv.Itoa(srv.HTTPPort), http.HandlerFunc(
					func(w http.ResponseWriter, r *http.Request) {
						if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
							httpChallenges.Add(1)
						}
						h.ServeHTTP(w, r)
					}))
			}

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cfg.ManageSync(ctx, []string{"a.test"}); err != nil {
				t.Fatalf("obtaining a certificate for a.test over %s: %v", name, err)
			}
			if http01 && (httpChallenges.Load() == 0 || alpnChallenges.Load() != 0) {
				t.Errorf("%d HTTP-01 and %d TLS-ALPN-01 validation requests, want some HTTP-01 only",
					httpChallenges.Load(), alpnChallenges.Load())
			}
			if !http01 && alpnChallenges.Load() == 0 {
				t.Errorf("no TLS-ALPN-01 validation handshake reached %s", tlsAddr)
			}

			leaf := verifiedLeaf(t, tlsAddr, "a.test", issuerRoots)
			if got := leaf.NotAfter.Sub(leaf.NotBefore); got < lifetime-2*time.Second || got > lifetime {
				t.Errorf("certificate valid for %v, want about %v", got, lifetime)
			}
			if got := srv.Orders() - orders; got != 1 {
				t.Errorf("pebble created %d orders, want 1", got)
			}
			if got := srv.Issued() - issued; got != 1 {
				t.Errorf("pebble issued %d certificates, want 1", got)
			}
		})
	}
}

// newCertmagic makes a certmagic config with its own cache and storage and
// one ACME issuer for srv that uses only the one challenge.
func newCertmagic(t *testing.T, srv *acmetest.Server, roots *x509.CertPool, http01 bool) (*certmagic.Config, *certmagic.ACMEIssuer) {
	var logs syncbuf.Buffer
	logger := zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("certmagic log:\n%s", logs.String())
		}
	})
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           logger,
	})
	t.Cleanup(cache.Stop)
	cfg = certmagic.New(cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: t.TempDir()},
		OCSP:    certmagic.OCSPConfig{DisableStapling: true},
		Logger:  logger,
	})
	issuer := certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:           srv.Directory,
		TrustedRoots: roots,
		Email:        "acmetest@example.com",
		Agreed:       true,
		// Our listeners are on these ports; certmagic finds them taken
		// and relies on them rather than on listeners of its own.
		ListenHost:              "127.0.0.1",
		AltHTTPPort:             srv.HTTPPort,
		AltTLSALPNPort:          srv.TLSPort,
		DisableHTTPChallenge:    !http01,
		DisableTLSALPNChallenge: http01,
		Logger:                  logger,
	})
	cfg.Issuers = []certmagic.Issuer{issuer}
	return cfg, issuer
}

// serveTLS completes TLS handshakes on addr with conf, as smoothserve's
// HTTPS listener would, and counts those that negotiated acme-tls/1.
func serveTLS(t *testing.T, addr string, conf *tls.Config) *atomic.Int32 {
	ln, err := tls.Listen("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var alpn atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() == nil && tc.ConnectionState().NegotiatedProtocol == "acme-tls/1" {
					alpn.Add(1)
				}
			}()
		}
	}()
	return &alpn
}

func serveHTTP(t *testing.T, addr string, h http.Handler) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serving HTTP on %s: %v", addr, err)
		}
	}()
	t.Cleanup(func() { s.Close() })
}

// verifiedLeaf handshakes with addr as a client that trusts only roots and
// returns the leaf of the chain it verified.
func verifiedLeaf(t *testing.T, addr, name string, roots *x509.CertPool) *x509.Certificate {
	d := &tls.Dialer{Config: &tls.Config{ServerName: name, RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS to %s as %s, trusting only pebble's issuer root: %v", addr, name, err)
	}
	defer c.Close()
	chains := c.(*tls.Conn).ConnectionState().VerifiedChains
	if len(chains) == 0 || len(chains[0]) < 3 {
		t.Fatalf("verified chains %v, want leaf, intermediate, root", chains)
	}
	return chains[0][0]
}

func poolFromFile(t *testing.T, path string) *x509.CertPool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("no PEM certificate in %s", path)
	}
	return p
}
