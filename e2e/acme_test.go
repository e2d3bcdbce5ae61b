package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/acmetest"
	"smoothserve/internal/testcert"
)

// HTTPS with `tls: auto`: certificates obtained from a local ACME server
// (pebble, internal/acmetest) over HTTP-01 at the service's plain port and
// TLS-ALPN-01 at HTTPSPort, kept in CertDir across restarts, upgrades and
// a stop, and renewed without a failed handshake.

// acmeSetup says how pebble validates and what it issues.
type acmeSetup struct {
	names    string        // server_name of the `tls: auto` service ("" for none)
	http01   bool          // pebble validates HTTP-01 at the service's port; else at a closed port
	tlsALPN  bool          // pebble validates TLS-ALPN-01 at HTTPSPort; else at a closed port
	lifetime time.Duration // of pebble's certificates; 0 for 90 days
}

// acmeEnv is an installed smoothserve (install, upgrade_test.go) whose
// HTTPSPort gets its certificates from srv.
type acmeEnv struct {
	*installed
	srv       *acmetest.Server
	httpsPort int
	certDir   string
}

// acmeStart starts pebble and writes smoothserve.yaml for it; the service
// files are the caller's, then acmeEnv.start.
func acmeStart(t *testing.T, s acmeSetup) *acmeEnv {
	t.Helper()
	e := newEnv(t, 10)
	httpsPort, closed := e.ports.next(), e.ports.next()
	o := acmetest.Options{HTTPPort: closed, TLSPort: closed, CertLifetime: s.lifetime}
	if s.http01 {
		o.HTTPPort = e.proxyPort
	}
	if s.tlsALPN {
		o.TLSPort = httpsPort
	}
	srv := acmetest.Start(t, o)
	a := &acmeEnv{srv: srv, httpsPort: httpsPort, certDir: filepath.Join(e.dir, "acme-certs")}
	e.writeMain(fmt.Sprintf("HTTPSPort: %d\nACMEDirectory: %s\nACMEEmail: e2e@example.com\nACMECARoot: %s\nCertDir: %s\n",
		httpsPort, srv.Directory, srv.CARootFile, a.certDir))
	if s.names != "" {
		e.service("web", s.names, 1, "tls: auto\n")
	}
	a.installed = acmeInstall(e)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("smoothserve.log:\n%s", tail(a.daemonLog(), 6000))
		}
	})
	return a
}

// acmeInstall is install (upgrade_test.go) for tests that run in
// parallel: the binaries are copied while no process is forked
// (syscall.ForkLock), so that no child of this process, forked by another
// test, holds them open for writing when they are run ("text file busy").
func acmeInstall(e *env) *installed {
	e.t.Helper()
	in := &installed{env: e, bin: filepath.Join(e.dir, "bin", "smoothserve"), tool: filepath.Join(e.dir, "bin", "smoothtool")}
	func() {
		syscall.ForkLock.Lock()
		defer syscall.ForkLock.Unlock()
		copyFile(e.t, bin.smoothserve, in.bin)
		copyFile(e.t, bin.smoothtool, in.tool)
	}()
	e.t.Cleanup(func() { killUnder(e.dir) })
	return in
}

// start runs `smoothtool start` and returns when it has.
func (a *acmeEnv) start() {
	a.t.Helper()
	if err := a.smoothtool("start"); err != nil {
		a.t.Fatal(err)
	}
}

// smoothtool runs the installed smoothtool; an exit status other than 0
// is an error holding its output.
func (a *acmeEnv) smoothtool(args ...string) error {
	if code, out, errOut := a.run(args...); code != 0 {
		return fmt.Errorf("smoothtool %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return nil
}

func (a *acmeEnv) httpsAddr() string { return "127.0.0.1:" + strconv.Itoa(a.httpsPort) }

// daemonLog is LogDir/smoothserve.log, where the daemon started by
// smoothtool writes.
func (a *acmeEnv) daemonLog() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "logs", "smoothserve.log"))
	return string(b)
}

// counts is pebble's orders and issued certificates so far.
func (a *acmeEnv) counts() (orders, issued int) { return a.srv.Orders(), a.srv.Issued() }

// acmeLeaf handshakes with addr as a client of name that trusts only
// roots, and returns the leaf of the chain it verified.
func acmeLeaf(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second},
		Config: &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	chains := c.(*tls.Conn).ConnectionState().VerifiedChains
	if len(chains) == 0 {
		return nil, fmt.Errorf("no verified chain")
	}
	return chains[0][0], nil
}

// waitLeaf polls a TLS handshake for name every 100 ms until it verifies
// against pebble's issuer root, and returns the leaf and how long it took.
func (a *acmeEnv) waitLeaf(name string, within time.Duration) (*x509.Certificate, time.Duration) {
	a.t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < within {
		leaf, err := acmeLeaf(a.httpsAddr(), name, a.srv.IssuerRootPool())
		if err == nil {
			return leaf, time.Since(start)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	orders, issued := a.counts()
	a.t.Fatalf("no verified TLS handshake for %s at %s within %v (pebble: %d orders, %d issued); last error: %v\nsmoothserve.log:\n%s",
		name, a.httpsAddr(), within, orders, issued, last, tail(a.daemonLog(), 4000))
	return nil, 0
}

// serials maps each name to the serial of the certificate served for it.
func (a *acmeEnv) serials(names []string) map[string]string {
	a.t.Helper()
	m := map[string]string{}
	for _, n := range names {
		leaf, err := acmeLeaf(a.httpsAddr(), n, a.srv.IssuerRootPool())
		if err != nil {
			a.t.Fatalf("TLS handshake for %s: %v\nsmoothserve.log:\n%s", n, err, tail(a.daemonLog(), 3000))
		}
		m[n] = leaf.SerialNumber.String()
	}
	return m
}

// client is an HTTPS client trusting only roots that dials HTTPSPort
// whatever the URL's host, and follows no redirect: HTTP/2 when h2, else
// HTTP/1.1 alone.
func (a *acmeEnv) client(h2 bool, roots *x509.CertPool) *http.Client {
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, a.httpsAddr())
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DialContext: dial, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	a.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// expectDemo GETs https://host:HTTPSPort/ with c and checks that the demo
// answered over HTTP/major.
func (a *acmeEnv) expectDemo(c *http.Client, host string, major int) {
	a.t.Helper()
	url := fmt.Sprintf("https://%s:%d/", host, a.httpsPort)
	resp, err := c.Get(url)
	if err != nil {
		a.t.Errorf("GET %s over HTTP/%d: %v", url, major, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != major || !strings.HasPrefix(string(body), "hello from demo") {
		a.t.Errorf("GET %s: %s status %d, body %q, read error %v; want HTTP/%d 200 from the demo",
			url, resp.Proto, resp.StatusCode, body, err, major)
	}
}

// acmePlainGet sends one GET for host to addr over plain HTTP and returns
// the status and Location.
func acmePlainGet(addr, host, target string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+addr+target, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host, req.Close = host, true
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

// expectRedirect checks that plain HTTP to the service's port is sent to
// https at HTTPSPort, but for an ACME challenge's path.
func (a *acmeEnv) expectRedirect(host string) {
	a.t.Helper()
	status, loc, err := acmePlainGet(a.proxyAddr(), host, "/some/path?q=1")
	want := fmt.Sprintf("https://%s:%d/some/path?q=1", host, a.httpsPort)
	if err != nil || status != 308 || loc != want {
		a.t.Errorf("plain GET /some/path?q=1, Host %s: status %d, Location %q, err %v; want 308 to %s", host, status, loc, err, want)
	}
	status, loc, err = acmePlainGet(a.proxyAddr(), host, "/.well-known/acme-challenge/no-such-token")
	if err != nil || status != 404 {
		a.t.Errorf("plain GET of an unknown ACME challenge, Host %s: status %d, Location %q, err %v; want 404 (challenges are not redirected)",
			host, status, loc, err)
	}
}

// expectCurl fetches https://host:HTTPSPort/ with curl over HTTP/2 and
// HTTP/1.1, trusting only pebble's issuer root (skipped without curl).
func (a *acmeEnv) expectCurl(host string) {
	a.t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		a.t.Log("no curl on PATH: the curl checks are skipped")
		return
	}
	port := strconv.Itoa(a.httpsPort)
	for _, proto := range []struct{ flag, want string }{{"--http2", "2"}, {"--http1.1", "1.1"}} {
		cmd := exec.Command(curl, "-sS", "--max-time", "10", proto.flag, "--cacert", a.srv.IssuerRootFile,
			"--resolve", host+":"+port+":127.0.0.1", "-w", "\nhttp_version=%{http_version}", "https://"+host+":"+port+"/")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "hello from demo") || !strings.HasSuffix(string(out), "http_version="+proto.want) {
			a.t.Errorf("curl %s https://%s:%s/: %v\n%s\nwant the demo's answer over HTTP/%s", proto.flag, host, port, err, out, proto.want)
			continue
		}
		a.t.Logf("curl %s --cacert (pebble's issuer root) https://%s:%s/: the demo answered over HTTP/%s", proto.flag, host, port, proto.want)
	}
}

// acmeChallenges counts, from pebble's log, the challenges its validation
// authority found valid and invalid, and the HTTP-01 requests it made.
func acmeChallenges(pebbleLog string) (valid, invalid, httpTries int) {
	return strings.Count(pebbleLog, " set VALID by completed challenge "),
		strings.Count(pebbleLog, " set INVALID by completed challenge "),
		strings.Count(pebbleLog, "Attempting to validate w/ HTTP: ")
}

// TestACMECertificateOverHTTP01AndTLSALPN01: a `tls: auto` service with
// two names gets a certificate for each from pebble, which can validate
// only the subtest's challenge type (the other one goes to a closed port),
// and serves them over HTTP/2 and HTTP/1.1 (Go's client and curl); plain
// HTTP is redirected to https, but for the ACME challenge path.
func TestACMECertificateOverHTTP01AndTLSALPN01(t *testing.T) {
	for _, tc := range []struct {
		name   string
		http01 bool
	}{{"HTTP-01", true}, {"TLS-ALPN-01", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := acmeStart(t, acmeSetup{names: "a.test, www.a.test", http01: tc.http01, tlsALPN: !tc.http01})
			start := time.Now()
			a.start()
			started := time.Since(start)
			leaf, waited := a.waitLeaf("a.test", 30*time.Second)
			www, _ := a.waitLeaf("www.a.test", 10*time.Second)
			t.Logf("smoothtool start took %v; a.test's certificate served %v after it (serial %s, valid %s to %s)",
				started.Round(time.Millisecond), waited.Round(time.Millisecond), leaf.SerialNumber,
				leaf.NotBefore.Format(time.DateTime), leaf.NotAfter.Format(time.DateTime))
			acmeExpectNames(t, leaf, "a.test")
			acmeExpectNames(t, www, "www.a.test")

			a.expectDemo(a.client(true, a.srv.IssuerRootPool()), "a.test", 2)
			a.expectDemo(a.client(false, a.srv.IssuerRootPool()), "a.test", 1)
			a.expectDemo(a.client(true, a.srv.IssuerRootPool()), "www.a.test", 2)
			a.expectRedirect("a.test")
			a.expectCurl("a.test")

			orders, issued := a.counts()
			valid, invalid, httpTries := acmeChallenges(a.srv.PebbleLog())
			t.Logf("pebble: %d orders, %d certificates issued; %d challenges valid, %d invalid; %d HTTP-01 requests",
				orders, issued, valid, invalid, httpTries)
			if issued != 2 || valid != 2 {
				t.Errorf("pebble issued %d certificates after %d valid challenges; want 2 and 2 (one certificate per name)", issued, valid)
			}
			if tc.http01 && httpTries == 0 {
				t.Errorf("pebble made no HTTP-01 request, yet only HTTP-01 could succeed")
			}
			if got := strings.Count(a.daemonLog(), "certificate obtained"); got != 2 {
				t.Errorf("smoothserve.log says %q %d times, want 2", "certificate obtained", got)
			}
			a.expectStored("a.test", "www.a.test")
		})
	}
}

// acmeExpectNames checks that leaf names exactly names.
func acmeExpectNames(t *testing.T, leaf *x509.Certificate, names ...string) {
	t.Helper()
	if strings.Join(leaf.DNSNames, ",") != strings.Join(names, ",") {
		t.Errorf("certificate %s names %v, want %v", leaf.SerialNumber, leaf.DNSNames, names)
	}
}

// expectStored checks that CertDir is private and holds each name's
// certificate.
func (a *acmeEnv) expectStored(names ...string) {
	a.t.Helper()
	if fi, err := os.Stat(a.certDir); err != nil {
		a.t.Error(err)
	} else if fi.Mode().Perm() != 0o700 {
		a.t.Errorf("CertDir %s has mode %v, want 0700", a.certDir, fi.Mode())
	}
	for _, n := range names {
		found, _ := filepath.Glob(filepath.Join(a.certDir, "certificates", "*", n, n+".crt"))
		if len(found) != 1 {
			a.t.Errorf("CertDir holds %v for %s, want one certificates/ISSUER/%s/%s.crt", found, n, n, n)
		}
	}
}

// TestACMECertificateIsReusedAcrossRestartStopAndUpgrade: once obtained,
// the certificates are served at once, and not ordered again, after a
// rolling restart of the service, an upgrade of smoothserve (SIGHUP) and a
// stop and start of smoothserve, which load them from CertDir.
func TestACMECertificateIsReusedAcrossRestartStopAndUpgrade(t *testing.T) {
	t.Parallel()
	a := acmeStart(t, acmeSetup{names: "a.test, www.a.test", http01: true, tlsALPN: true})
	a.start()
	names := []string{"a.test", "www.a.test"}
	for _, n := range names {
		a.waitLeaf(n, 30*time.Second)
	}
	want := a.serials(names)
	orders, issued := a.counts()
	t.Logf("certificates %v; pebble: %d orders, %d issued", want, orders, issued)
	const loadedLine = "certificate loaded from CertDir"
	for _, step := range []struct {
		name       string
		newProcess bool
		do         func() error
	}{
		{"smoothtool restart web", false, func() error { return a.smoothtool("restart", "web") }},
		{"an upgrade by SIGHUP", true, func() error { _, _, err := upgradeBySIGHUP(a.installed); return err }},
		{"smoothtool stop all, then start", true, func() error {
			if err := a.smoothtool("stop", "all"); err != nil {
				return err
			}
			return a.smoothtool("start")
		}},
	} {
		before := strings.Count(a.daemonLog(), loadedLine)
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		_, took := a.waitLeaf("a.test", 5*time.Second)
		got := a.serials(names)
		o, i := a.counts()
		loaded := strings.Count(a.daemonLog(), loadedLine) - before
		t.Logf("after %s: served %v after it, certificates %v; pebble: %d orders, %d issued; %q logged %d times",
			step.name, took.Round(time.Millisecond), got, o, i, loadedLine, loaded)
		for _, n := range names {
			if got[n] != want[n] {
				t.Errorf("after %s, %s is served certificate %s, want the one obtained before, %s", step.name, n, got[n], want[n])
			}
		}
		if step.newProcess && loaded < len(names) {
			t.Errorf("after %s, smoothserve.log says %q %d times, want once per certificate (%d)", step.name, loadedLine, loaded, len(names))
		}
		if o != orders || i != issued {
			t.Errorf("after %s pebble has %d orders and %d certificates issued, want still %d and %d", step.name, o, i, orders, issued)
		}
	}
}

// TestACMEShortLivedCertificateIsRenewedWithoutAFailedHandshake: pebble
// issues certificates valid for 40 s; a handshake every 200 ms sees the
// certificate replaced by a new one before it expires, and none fails.
func TestACMEShortLivedCertificateIsRenewedWithoutAFailedHandshake(t *testing.T) {
	t.Parallel()
	const lifetime = 40 * time.Second
	a := acmeStart(t, acmeSetup{names: "a.test", http01: true, tlsALPN: true, lifetime: lifetime})
	a.start()
	first, _ := a.waitLeaf("a.test", 30*time.Second)
	_, issued := a.counts()
	start := time.Now()
	var handshakes int
	var failures []string
	var renewed *x509.Certificate
	for time.Since(start) < 60*time.Second && renewed == nil {
		handshakes++
		leaf, err := acmeLeaf(a.httpsAddr(), "a.test", a.srv.IssuerRootPool())
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
		case leaf.SerialNumber.Cmp(first.SerialNumber) != 0:
			renewed = leaf
		default:
			time.Sleep(200 * time.Millisecond)
		}
	}
	orders, issuedNow := a.counts()
	t.Logf("%d handshakes in %v, %d failed; first certificate %s valid %s to %s; pebble: %d orders, %d issued (%d before)",
		handshakes, time.Since(start).Round(time.Millisecond), len(failures), first.SerialNumber,
		first.NotBefore.Format(time.TimeOnly), first.NotAfter.Format(time.TimeOnly), orders, issuedNow, issued)
	if len(failures) > 0 {
		t.Errorf("%d of %d handshakes failed:\n%s", len(failures), handshakes, strings.Join(failures, "\n"))
	}
	if renewed == nil {
		t.Fatalf("the certificate %s (expiring %s) was not replaced within 60s\nsmoothserve.log:\n%s",
			first.SerialNumber, first.NotAfter.Format(time.TimeOnly), tail(a.daemonLog(), 3000))
	}
	t.Logf("renewed certificate %s served at %s, %v before the first expired; valid %s to %s",
		renewed.SerialNumber, time.Now().Format(time.TimeOnly), time.Until(first.NotAfter).Round(time.Millisecond),
		renewed.NotBefore.Format(time.TimeOnly), renewed.NotAfter.Format(time.TimeOnly))
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("the new certificate expires %s, not after the first (%s)", renewed.NotAfter, first.NotAfter)
	}
	acmeExpectNames(t, renewed, "a.test")
	for range 5 { // the new certificate stays
		time.Sleep(200 * time.Millisecond)
		if got := a.serials([]string{"a.test"})["a.test"]; got != renewed.SerialNumber.String() {
			t.Errorf("a handshake after the renewal got certificate %s, want the new one, %s", got, renewed.SerialNumber)
		}
	}
	if !strings.Contains(a.daemonLog(), "renewal=true") {
		t.Errorf("smoothserve.log has no certificate obtained with renewal=true:\n%s", tail(a.daemonLog(), 3000))
	}
}

// TestACMENameWithoutACertificateFailsOnlyItsHandshake: pebble can
// validate no challenge (both go to a closed port), so the `tls: auto`
// name b.test gets no certificate: its handshakes fail, and the log says
// why, while a.test, a `tls: files` service on the same ports, is served.
func TestACMENameWithoutACertificateFailsOnlyItsHandshake(t *testing.T) {
	t.Parallel()
	a := acmeStart(t, acmeSetup{})
	roots := a.selfSignedPair("a", "a.test")
	a.service("files", "a.test", 1, "tls: files\ntls_cert: ./tlsfiles/a.crt\ntls_key: ./tlsfiles/a.key\n")
	a.service("auto", "b.test", 1, "tls: auto\n")
	a.start()
	if !waitUntil(20*time.Second, func() bool { return strings.Contains(a.daemonLog(), "obtaining a certificate failed") }) {
		t.Fatalf("smoothserve.log does not say %q within 20s:\n%s", "obtaining a certificate failed", tail(a.daemonLog(), 3000))
	}
	orders, issued := a.counts()
	t.Logf("pebble: %d orders, %d issued; smoothserve.log: %s", orders, issued,
		regexp.MustCompile(`(?m)^.*obtaining a certificate failed.*$`).FindString(a.daemonLog()))
	if issued != 0 {
		t.Errorf("pebble issued %d certificates, though it could validate no challenge", issued)
	}

	// Any certificate would do for this client: the handshake must fail
	// for want of one, not in verifying it.
	d := &tls.Dialer{Config: &tls.Config{ServerName: "b.test", InsecureSkipVerify: true}}
	c, err := d.Dial("tcp", a.httpsAddr())
	if err == nil {
		c.Close()
		t.Errorf("a TLS handshake for b.test, which has no certificate, succeeded")
	} else {
		t.Logf("handshake for b.test: %v", err)
	}
	if leaf, err := acmeLeaf(a.httpsAddr(), "a.test", roots); err != nil {
		t.Errorf("TLS for a.test (tls: files) while b.test has no certificate: %v", err)
	} else {
		acmeExpectNames(t, leaf, "a.test")
	}
	a.expectDemo(a.client(true, roots), "a.test", 2)
	a.expectDemo(a.client(false, roots), "a.test", 1)
	want := "TLS handshake failed: no certificate for this name (yet"
	if !waitUntil(5*time.Second, func() bool { return strings.Contains(a.daemonLog(), want) }) {
		t.Errorf("smoothserve.log does not say %q:\n%s", want, tail(a.daemonLog(), 3000))
	}
}

// selfSignedPair writes a self-signed certificate for names and its key
// to tlsfiles/NAME.crt and tlsfiles/NAME.key, and returns a pool trusting
// it.
func (a *acmeEnv) selfSignedPair(name string, names ...string) *x509.CertPool {
	a.t.Helper()
	certPEM, keyPEM, err := testcert.SelfSigned(7, 24*time.Hour, names...)
	if err != nil {
		a.t.Fatal(err)
	}
	writeFile(a.t, filepath.Join(a.dir, "tlsfiles", name+".key"), string(keyPEM))
	writeFile(a.t, filepath.Join(a.dir, "tlsfiles", name+".crt"), string(certPEM))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}
