package acmetest

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/freeport"
)

// readyTimeout bounds the wait for the started processes to answer, once
// the executables exist (building them is bounded by buildTimeout).
const readyTimeout = 20 * time.Second

// startAttempts is how often Start picks new ports when one it picked was
// taken between the check and the bind.
const startAttempts = 3

// Options configure Start.
type Options struct {
	// HTTPPort and TLSPort are the ports on 127.0.0.1 that pebble's
	// validation authority connects to for HTTP-01 and TLS-ALPN-01: the
	// ports the code under test listens on. 0 picks a free port; the
	// Server reports the port used.
	HTTPPort, TLSPort int

	// CertLifetime is the validity of the certificates pebble issues,
	// rounded up to whole seconds; 0 is pebble's default (90 days). Short
	// lifetimes let tests see renewal.
	CertLifetime time.Duration
}

// Server is a running pebble and its DNS server. Its fields are set by
// Start and must not be changed.
type Server struct {
	// Directory is the https URL of the ACME directory.
	Directory string

	// CARootFile is a PEM file holding the root that signs pebble's own
	// HTTPS listeners: what an ACME client must trust to talk to it.
	CARootFile string

	// IssuerRootFile is a PEM file holding the root that the certificates
	// pebble issues chain to: what a client of a site served with them
	// must trust (curl --cacert, say). The chain pebble returns holds the
	// intermediate.
	IssuerRootFile string

	// HTTPPort and TLSPort are the challenge ports pebble validates on.
	HTTPPort, TLSPort int

	// DNSAddr is the host:port of the DNS server pebble resolves with; it
	// answers every A query with 127.0.0.1 and no AAAA query.
	DNSAddr string

	// ManagementURL is the https URL of pebble's management interface
	// (/roots/0, /intermediates/0, /cert-status-by-serial/...).
	ManagementURL string

	acmeAddr, mgmtAddr string // pebble's two listeners, host:port
	caRoot, issuerRoot *x509.Certificate
	issuerRootPEM      []byte
	pebble, chall      *proc
}

// IssuerRoot returns a copy of the PEM root that issued certificates chain to.
func (s *Server) IssuerRoot() []byte { return append([]byte(nil), s.issuerRootPEM...) }

// IssuerRootPool returns a pool holding only IssuerRoot: the RootCAs for a
// client of a site served with pebble's certificates.
func (s *Server) IssuerRootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.issuerRoot)
	return p
}

// CARootPool returns a pool holding only the root of CARootFile: the
// trusted roots for an ACME client of Directory.
func (s *Server) CARootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.caRoot)
	return p
}

// Orders is the number of orders pebble has created (newOrder requests it
// accepted), counted from its log.
func (s *Server) Orders() int { return s.pebble.countLines("Added order ") }

// Issued is the number of certificates pebble has issued, counted from its
// log. A certificate counts before the client can download it.
func (s *Server) Issued() int { return s.pebble.countLines("Issued certificate serial ") }

// PebbleLog is pebble's output so far.
func (s *Server) PebbleLog() string { return s.pebble.output() }

// Start builds (once per test process) and starts pebble-challtestsrv and
// pebble, waits until the ACME directory answers, and stops both when the
// test ends. It fails the test if they cannot be started.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.HTTPPort < 0 || o.TLSPort < 0 || o.CertLifetime < 0 {
		t.Fatalf("acmetest: bad options %+v", o)
	}
	bins, took, err := findTools()
	if err != nil {
		t.Fatal(err)
	}
	if took > 5*time.Second {
		t.Logf("acmetest: building pebble and pebble-challtestsrv took %v", took.Round(time.Millisecond))
	}
	dir := t.TempDir() // before t.Cleanup below, so removed after the stop
	files, err := writeListenerFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		s, err := launch(bins, files, dir, attempt, o)
		if err == nil {
			t.Cleanup(func() { s.stop(t) })
			return s
		}
		if s != nil {
			s.stop(nil)
			t.Logf("acmetest: attempt %d failed: %v\n%s", attempt, err, s.outputs())
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("acmetest: starting pebble: %v", err)
		}
	}
}

var errPortTaken = errors.New("a port was taken by another process")

// launch starts both processes on newly picked ports and waits for them.
// On error the Server returned, if not nil, holds what was started.
func launch(bins binaries, files listenerFiles, dir string, attempt int, o Options) (*Server, error) {
	base, err := freeport.Range(6)
	if err != nil {
		return nil, err
	}
	if !udpFree(base) {
		return nil, fmt.Errorf("DNS port %d: %w (UDP)", base, errPortTaken)
	}
	s := &Server{
		CARootFile: files.caFile,
		HTTPPort:   orPort(o.HTTPPort, base+4),
		TLSPort:    orPort(o.TLSPort, base+5),
		DNSAddr:    addr(base),
		acmeAddr:   addr(base + 1),
		mgmtAddr:   addr(base + 2),
		caRoot:     files.ca,
	}
	s.Directory = "https://" + s.acmeAddr + "/dir"
	s.ManagementURL = "https://" + s.mgmtAddr
	prefix := filepath.Join(dir, "attempt"+strconv.Itoa(attempt)+"-")
	s.chall, err = startProc("pebble-challtestsrv", bins.challtestsrv, []string{
		"-dnsserver", s.DNSAddr,
		"-defaultIPv4", "127.0.0.1",
		"-defaultIPv6", "",
		"-management", addr(base + 3),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
	}, childEnv(), prefix+"challtestsrv.log")
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(readyTimeout)
	if err := waitDNS(s.chall, s.DNSAddr, deadline); err != nil {
		return s, classify(s, err)
	}
	cfgPath := prefix + "pebble-config.json"
	if err := writePebbleConfig(cfgPath, files, s, o.CertLifetime); err != nil {
		return s, err
	}
	s.pebble, err = startProc("pebble", bins.pebble,
		[]string{"-config", cfgPath, "-dnsserver", s.DNSAddr},
		childEnv("PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"),
		prefix+"pebble.log")
	if err != nil {
		return s, err
	}
	if err := waitPebble(s, deadline); err != nil {
		return s, classify(s, err)
	}
	s.IssuerRootFile = filepath.Join(dir, "issuer-root.pem")
	if err := os.WriteFile(s.IssuerRootFile, s.issuerRootPEM, 0o600); err != nil {
		return s, err
	}
	return s, nil
}

// classify marks err as errPortTaken when a process reported a bind
// failure, so that Start tries other ports.
func classify(s *Server, err error) error {
	if strings.Contains(s.outputs(), "address already in use") {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}

// writePebbleConfig writes pebble's JSON configuration. The validity
// period goes in a profile: pebble v2.10.3 reads certificateValidityPeriod
// but ignores it. With a single profile every order uses it (pebble picks
// a random profile for orders that name none).
func writePebbleConfig(path string, files listenerFiles, s *Server, lifetime time.Duration) error {
	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod uint64 `json:"validityPeriod"`
	}
	var c struct {
		Pebble struct {
			ListenAddress                  string             `json:"listenAddress"`
			ManagementListenAddress        string             `json:"managementListenAddress"`
			Certificate                    string             `json:"certificate"`
			PrivateKey                     string             `json:"privateKey"`
			HTTPPort                       int                `json:"httpPort"`
			TLSPort                        int                `json:"tlsPort"`
			OCSPResponderURL               string             `json:"ocspResponderURL"`
			ExternalAccountBindingRequired bool               `json:"externalAccountBindingRequired"`
			KeyAlgorithm                   string             `json:"keyAlgorithm"`
			Profiles                       map[string]profile `json:"profiles"`
		} `json:"pebble"`
	}
	p := &c.Pebble
	p.ListenAddress, p.ManagementListenAddress = s.acmeAddr, s.mgmtAddr
	p.Certificate, p.PrivateKey = files.certFile, files.keyFile
	p.HTTPPort, p.TLSPort = s.HTTPPort, s.TLSPort
	p.KeyAlgorithm = "ecdsa" // its CA keys are made at start: faster than RSA
	// 0 makes pebble use its default (90 days).
	secs := uint64(math.Ceil(lifetime.Seconds()))
	p.Profiles = map[string]profile{"default": {Description: "acmetest", ValidityPeriod: secs}}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// stop stops both processes; with t, it first copies their output into
// the test log if the test failed.
func (s *Server) stop(t testing.TB) {
	if t != nil && t.Failed() {
		t.Logf("acmetest: output of the ACME test server:\n%s", s.outputs())
	}
	for _, p := range []*proc{s.pebble, s.chall} {
		if p != nil {
			p.stop()
		}
	}
}

// outputs is both processes' output, each under a header.
func (s *Server) outputs() string {
	var b strings.Builder
	for _, p := range []*proc{s.chall, s.pebble} {
		if p != nil {
			fmt.Fprintf(&b, "----- %s (%s) -----\n%s\n", p.name, p.logPath, p.output())
		}
	}
	return b.String()
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func orPort(port, fallback int) int {
	if port != 0 {
		return port
	}
	return fallback
}
