package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// renewCheckEvery is how often the certificates are checked for renewal:
// a scan of the few in memory, so often enough that a short-lived
// certificate (days, or a test CA's minutes) is renewed well in time.
const renewCheckEvery = 10 * time.Second

// Options say where certificates come from and where challenges are
// answered.
type Options struct {
	Dir        string // CertDir: certificates and ACME account keys, created 0700
	Directory  string // ACMEDirectory: the ACME server's directory URL
	Email      string // ACMEEmail: the account's contact, or none
	CARoot     string // ACMECARoot: PEM roots to trust when talking to the ACME server; "" for the system's
	ListenHost string // ProxyAddr: where the challenge ports listen
	HTTPPort   int    // the plain-HTTP port HTTP-01 challenges come to (the proxy answers them)
	TLSPort    int    // HTTPSPort: where TLS-ALPN-01 challenges come
	Logger     *slog.Logger
}

// Site is one TLS service's names and how its certificate is had.
type Site struct {
	Service  string
	Names    []string // lower case; "*.example.com" wildcards (files only)
	Auto     bool     // from ACME; else from CertFile and KeyFile
	CertFile string
	KeyFile  string
}

// Manager serves certificates by SNI.
//
// Ownership: sites is replaced whole by Set, under mu; the file pairs are
// owned by files (files.go); certmagic owns the automatic ones.
type Manager struct {
	opts   Options
	log    *slog.Logger
	magic  *certmagic.Config
	acme   *certmagic.ACMEIssuer
	cache  *certmagic.Cache
	files  *filePairs
	ctx    context.Context
	cancel context.CancelFunc

	tlsCfg *tls.Config // the HTTPS port's, one for the process (tickets.go sets its keys)
	quiet  onceAMinute // handshake failures logged once a minute a name

	mu      sync.Mutex
	auto    atomic.Pointer[map[string]bool] // the names obtained over ACME
	names   []string                        // what ManageAsync was given last
	tickets [][32]byte                      // session ticket keys, newest first
}

// New makes a Manager; it obtains nothing until Set. tickets is the
// previous process's session ticket keys (TicketKeysFile), or nil.
func New(o Options, tickets *os.File) (*Manager, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("CertDir %s: %w", o.Dir, err)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Manager{opts: o, log: o.Logger}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	var roots *x509.CertPool
	if o.CARoot != "" {
		pem, err := os.ReadFile(o.CARoot)
		if err != nil {
			return nil, fmt.Errorf("ACMECARoot: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ACMECARoot %s: no PEM certificate in it", o.CARoot)
		}
	}
	nop := zap.NewNop()
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: renewCheckEvery,
		Logger:             nop,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: o.Dir},
		Logger:  nop,
		OnEvent: m.onEvent,
	})
	m.acme = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:             o.Directory,
		TestCA:         o.Directory,
		Email:          o.Email,
		Agreed:         true,
		TrustedRoots:   roots,
		ListenHost:     o.ListenHost,
		AltHTTPPort:    o.HTTPPort,
		AltTLSALPNPort: o.TLSPort,
		Logger:         nop,
	})
	m.magic.Issuers = []certmagic.Issuer{m.acme}
	m.files = newFilePairs(m.log)
	empty := map[string]bool{}
	m.auto.Store(&empty)
	m.tlsCfg = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1", "acme-tls/1"},
		GetCertificate: m.GetCertificate,
	}
	if err := m.initTickets(tickets); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// Set makes sites the TLS services: their file pairs are read (one that
// cannot be keeps the pair in use, if any, and is the error), and their
// automatic names are obtained in the background, those not in CertDir
// yet ordered.
func (m *Manager) Set(sites []Site) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	auto := map[string]bool{}
	var names []string
	var pairs []Site
	for _, s := range sites {
		if !s.Auto {
			pairs = append(pairs, s)
			continue
		}
		for _, n := range s.Names {
			if !auto[n] {
				auto[n] = true
				names = append(names, n)
			}
		}
	}
	err := m.files.set(pairs)
	m.auto.Store(&auto)
	slices.Sort(names)
	if len(names) > 0 && !slices.Equal(names, m.names) {
		if merr := m.magic.ManageAsync(m.ctx, names); merr != nil {
			err = errors.Join(err, fmt.Errorf("certificates for %s: %w", strings.Join(names, ", "), merr))
		}
	}
	m.names = names
	return err
}

// TLSConfig is the HTTPS port's configuration: TLS 1.2 and 1.3, Go's
// cipher suites, h2 and http/1.1 (and acme-tls/1 for TLS-ALPN-01
// challenges), certificates by SNI.
func (m *Manager) TLSConfig() *tls.Config { return m.tlsCfg }

// GetCertificate chooses the certificate for a handshake. For a name no TLS
// service has (or none: a client that sends no SNI, as one connecting by
// address), it returns none and no error, so that crypto/tls refuses the
// handshake with the alert that says so (unrecognized_name; an error
// would be an internal_error).
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == "acme-tls/1" {
		return m.magic.GetCertificate(hello) // a TLS-ALPN-01 challenge
	}
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name == "" {
		// A client connecting by address sends no SNI (RFC 6066 has no
		// IP there): the address it came to is the name it asked for, as
		// Caddy's certmagic takes it, so that a service whose server_name
		// is that address (its certificate covering it) is served.
		name = localIP(hello)
	}
	if c := m.files.lookup(name); c != nil {
		return c, nil
	}
	if (*m.auto.Load())[name] {
		c, err := m.magic.GetCertificate(hello)
		if err != nil && m.quiet.first(name) {
			m.log.Warn("TLS handshake failed: no certificate for this name (yet: it is obtained, or retried, in the background)", "server_name", name, "err", err)
		}
		return c, err
	}
	if m.quiet.first(name) {
		client := ""
		if hello.Conn != nil {
			client = hello.Conn.RemoteAddr().String()
		}
		m.log.Info("TLS handshake failed: no TLS service has this name (said once a minute a name)", "server_name", name, "client", client)
	}
	return nil, nil
}

// localIP is the address hello's connection came to, "" if unknown.
func localIP(hello *tls.ClientHelloInfo) string {
	if hello.Conn == nil {
		return ""
	}
	ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String())
	if err != nil {
		return ""
	}
	return ap.Addr().Unmap().String()
}

// HTTPChallenge answers an ACME HTTP-01 challenge request for host at path.
func (m *Manager) HTTPChallenge(host, path string) ([]byte, bool) {
	r, err := http.NewRequest(http.MethodGet, "http://challenge"+path, nil)
	if err != nil {
		return nil, false // not a token an ACME server sends
	}
	r.Host = host
	var w bodyRecorder
	if !m.acme.HandleHTTPChallenge(&w, r) {
		return nil, false
	}
	return w.body, true
}

// bodyRecorder keeps what certmagic writes as a challenge's answer (not
// net/http/httptest's recorder: a package that a program links inits a
// test certificate at every start).
type bodyRecorder struct {
	header http.Header
	body   []byte
}

func (b *bodyRecorder) Header() http.Header {
	if b.header == nil {
		b.header = http.Header{}
	}
	return b.header
}

func (b *bodyRecorder) Write(p []byte) (int, error) {
	b.body = append(b.body, p...)
	return len(p), nil
}

func (b *bodyRecorder) WriteHeader(int) {}

// Stop ends certificate maintenance (renewals, file watching): the process
// that replaces this one does its own.
func (m *Manager) Stop() {
	m.cancel()
	m.files.stop()
	m.cache.Stop()
}

// onEvent logs what certmagic does with certificates.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtaining":
		m.log.Info("obtaining a certificate over ACME", "name", data["identifier"])
	case "cert_obtained":
		m.log.Info("certificate obtained", "name", data["identifier"], "renewal", data["renewal"], "file", data["certificate_path"])
	case "cert_failed":
		m.log.Error("obtaining a certificate failed", "name", data["identifier"], "renewal", data["renewal"], "err", data["error"])
	case "cached_managed_cert":
		m.log.Info("certificate loaded from CertDir", "names", data["sans"])
	}
	return nil
}

// onceAMinute says yes to a name at most once a minute, so that a scanner
// trying names cannot flood the log; it forgets everything once it holds
// maxQuiet names.
type onceAMinute struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const maxQuiet = 4096

func (q *onceAMinute) first(name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	if t, ok := q.last[name]; ok && now.Sub(t) < time.Minute {
		return false
	}
	if q.last == nil || len(q.last) >= maxQuiet {
		q.last = map[string]time.Time{}
	}
	q.last[name] = now
	return true
}
