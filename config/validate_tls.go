package config

import (
	"errors"
	"io/fs"
	"net/url"
	"os"
	"strings"
)

// The rules of HTTPS: smoothserve.yaml's HTTPSPort and ACME keys, and each
// service's tls keys. Reading the certificate files is certs.go's.

// validateMainTLS checks smoothserve.yaml's HTTPS keys that need no file
// read, so LoadMain checks them too.
func (l *loader) validateMainTLS() {
	c, k := l.cfg, l.main
	if k.usable("HTTPSPort") && c.HTTPSPort != 0 { // 0: unset, no HTTPS
		l.goodHTTPS = l.checkPort(k, "HTTPSPort", c.HTTPSPort)
	}
	if l.goodHTTPS {
		others := []struct {
			key  string
			port int
		}{{"ProxyPort", c.ProxyPort}, {"CommandPort", c.CommandPort}}
		for _, o := range others {
			if k.set[o.key] && o.port == c.HTTPSPort {
				l.add(k.errorf("HTTPSPort", "%d is also %s (line %d); HTTPS needs a port of its own",
					c.HTTPSPort, o.key, c.Lines[o.key]))
			}
		}
	}
	if k.usable("ACMEDirectory") && !isHTTPSURL(c.ACMEDirectory) {
		l.add(k.errorf("ACMEDirectory", "want an https:// URL, such as %s, got %q", DefaultACMEDirectory, c.ACMEDirectory))
	}
	if k.usable("ACMEEmail") && c.ACMEEmail != "" && !looksLikeEmail(c.ACMEEmail) {
		l.add(k.errorf("ACMEEmail", "want an email address, such as admin@example.com, got %q", c.ACMEEmail))
	}
}

// checkMainFiles checks the files and folders smoothserve.yaml's HTTPS keys
// name. It is Load's alone: LoadMain serves smoothtool, which must reach
// the daemon while these are broken.
func (l *loader) checkMainFiles() {
	c, k := l.cfg, l.main
	if k.set["ACMECARoot"] {
		if msg := caRootProblem(c.ACMECARoot); msg != "" {
			l.add(k.errorf("ACMECARoot", "%s", msg))
		}
	}
	// CertDir need not exist: the daemon makes it. A file there would stop it.
	if k.usable("CertDir") {
		if info, err := os.Stat(c.CertDir); err == nil && !info.IsDir() {
			l.add(k.errorf("CertDir", "%s: is a file, not a folder", c.CertDir))
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.add(k.errorf("CertDir", "%s: %s", c.CertDir, cause(err)))
		}
	}
}

// isHTTPSURL reports whether s is an absolute https:// URL with a host.
func isHTTPSURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.Opaque == "" && u.User == nil
}

// looksLikeEmail is a loose check that catches typos, not a parser: one @
// with text on both sides, and no spaces or control characters.
func looksLikeEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.Contains(domain, "@") &&
		!strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// checkServiceTLS checks a service's tls keys, and, for an enabled service,
// that HTTPSPort is set and the files of tls: files are a good pair.
func (l *loader) checkServiceTLS(s *Service, k *fileKeys) {
	if !k.usable("tls") {
		return
	}
	switch s.TLS {
	case TLSOff, TLSAuto, TLSFiles:
	default:
		l.add(k.errorf("tls", "want %q, %q or %q, got %q", TLSOff, TLSAuto, TLSFiles, s.TLS))
		return
	}
	for _, key := range []string{"tls_cert", "tls_key"} {
		switch {
		case s.TLS == TLSFiles && k.usable(key) && !k.set[key]:
			// At the tls line, which is what asks for the file.
			l.add(&Error{File: k.file, Line: k.at("tls"), Key: key, Msg: "required with tls: files"})
		case s.TLS != TLSFiles && k.set[key]:
			l.add(k.errorf(key, "used only with tls: files; tls is %q", s.TLS))
		}
	}
	if k.set["https_redirect"] && s.HTTPSRedirect && !s.tlsOn() {
		l.add(k.errorf("https_redirect", "true needs tls: auto or tls: files; tls is %q", s.TLS))
	}
	if s.TLS == TLSAuto && k.usable("server_name") {
		l.checkAutoNames(s, k)
	}
	// As its executable, a disabled service's files may be missing, and it
	// is served on no port.
	if !s.Enabled {
		return
	}
	if s.tlsOn() && l.main.usable("HTTPSPort") && l.cfg.HTTPSPort == 0 {
		l.add(k.errorf("tls", "%s needs HTTPSPort, which is not set in %s", s.TLS, l.cfg.Path))
	}
	if s.TLS == TLSFiles && k.usable("server_name") && len(s.ServerNames) == 0 {
		// The HTTPS port picks a certificate by the name the client asks
		// for (SNI): a pair served for no name fails every handshake, and
		// the plain port would redirect every request to it.
		l.add(k.errorf("tls", "files needs a server_name: the certificate is served for the names clients ask for (SNI), and with none every handshake would fail"))
	}
	if s.TLS == TLSFiles {
		l.checkCertFiles(s, k)
	}
}

// checkAutoNames: tls: auto gets a certificate for each server_name by the
// ACME HTTP or TLS-ALPN challenge, which cannot prove a wildcard, and there
// is nothing to ask for without a name.
func (l *loader) checkAutoNames(s *Service, k *fileKeys) {
	if len(s.ServerNames) == 0 {
		l.add(k.errorf("tls", "auto needs a server_name: certificates are issued for host names"))
	}
	for _, name := range s.ServerNames {
		if strings.HasPrefix(name, "*.") {
			l.add(k.errorf("tls", "auto cannot get a certificate for %q: a wildcard needs the ACME DNS challenge, which smoothserve does not support; use tls: files", name))
		}
	}
}

// checkHTTPSPort: no enabled service serves plain HTTP on HTTPSPort. When
// ProxyPort is HTTPSPort, that is reported once, by validateMainTLS.
func (l *loader) checkHTTPSPort() {
	c := l.cfg
	if !l.goodHTTPS || c.HTTPSPort == c.ProxyPort {
		return
	}
	for _, s := range c.Services {
		if s.Enabled && l.goodPort[s] && s.Port == c.HTTPSPort {
			k := l.svc[s]
			l.add(k.errorf("port", "%d is HTTPSPort (%s:%d), where TLS is served; plain HTTP needs another port",
				s.Port, c.Path, c.Lines["HTTPSPort"]))
		}
	}
}

// httpsTable is the routing table of HTTPSPort, shared by every enabled
// service with tls on; ok is false when s is not served there.
func (l *loader) httpsTable(s *Service) (table routeTable, ok bool) {
	if !l.goodHTTPS || !s.Enabled || !s.tlsOn() || !l.svc[s].usable("tls") {
		return routeTable{}, false
	}
	return routeTable{port: l.cfg.HTTPSPort, https: true}, true
}
