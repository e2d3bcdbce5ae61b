package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"smoothserve/internal/testcert"
)

// certSpec is a self-signed test certificate: for names (DNS names or IP
// addresses), in force from notBefore to notAfter.
type certSpec struct {
	names               []string
	notBefore, notAfter time.Time
}

// pemPair is a certificate and its key, PEM-encoded.
type pemPair struct{ cert, key string }

// newKey makes an ECDSA P-256 key.
func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// selfSigned makes spec's certificate for key, returning its PEM.
func selfSigned(t *testing.T, spec certSpec, key crypto.Signer) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "smoothserve test"},
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range spec.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// caCert is a CA's certificate, PEM (testcert's).
func caCert(t *testing.T) string {
	t.Helper()
	ca, err := testcert.NewCA("smoothserve test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return string(ca.PEM)
}

// pkcs8 is key as a PEM "PRIVATE KEY".
func pkcs8(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// newPair makes a certificate for spec with a new ECDSA key in PKCS #8.
func newPair(t *testing.T, spec certSpec) pemPair {
	t.Helper()
	key := newKey(t)
	return pemPair{selfSigned(t, spec, key), pkcs8(t, key)}
}

// inForce is a certSpec valid from yesterday for a year.
func inForce(names ...string) certSpec {
	now := time.Now()
	return certSpec{names: names, notBefore: now.Add(-24 * time.Hour), notAfter: now.Add(365 * 24 * time.Hour)}
}

// TestCertFiles checks tls: files' certificate and key: good pairs in each
// key encoding, and each problem with its message and line. The service
// file is web plus tlsLines: 6 server_name, 7 tls, 8 tls_cert, 9 tls_key.
func TestCertFiles(t *testing.T) {
	now := time.Now()
	good := newPair(t, inForce("a.example.com", "www.a.example.com"))
	wild := newPair(t, inForce("*.example.com"))
	ip := newPair(t, inForce("127.0.0.1"))
	expired := newPair(t, certSpec{[]string{"a.example.com"}, now.Add(-48 * time.Hour), now.Add(-24 * time.Hour)})
	future := newPair(t, certSpec{[]string{"a.example.com"}, now.Add(72 * time.Hour), now.Add(96 * time.Hour)})
	other := newPair(t, inForce("b.example.com", "c.example.com"))
	noNames := newPair(t, inForce())
	expiredOn := now.Add(-24 * time.Hour).UTC().Format(time.DateOnly)
	validFrom := now.Add(72 * time.Hour).UTC().Format(time.DateOnly)

	ecKey := newKey(t)
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pemPair{selfSigned(t, inForce("a.example.com"), ecKey), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pemPair{selfSigned(t, inForce("a.example.com"), rsaKey),
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))}

	badBlock := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	_, badErr := x509.ParseCertificate([]byte{0, 0, 0})
	_, badKeyErr := x509.ParsePKCS8PrivateKey([]byte{0, 0, 0})
	const names = "server_name: a.example.com, www.a.example.com\n"
	files := func(names string, p pemPair) tree {
		return tree{
			"services/a.yaml": web + names + "tls: files\ntls_cert: certs/a.pem\ntls_key: certs/a.key\n",
			"certs/a.pem":     p.cert, "certs/a.key": p.key,
		}
	}
	with := func(files tree, more tree) tree {
		for k, v := range more {
			files[k] = v
		}
		return files
	}
	tests := []struct {
		name  string
		files tree
		want  []string
	}{
		{"good", files(names, good), nil},
		// Served for no name, it would fail every handshake (SNI).
		{"no server_name", files("", other), []string{
			"$S/a.yaml:6: tls: files needs a server_name: the certificate is served for the names clients ask for (SNI), and with none every handshake would fail"}},
		{"a wildcard covers a wildcard", files("server_name: '*.example.com, x.example.com'\n", wild), nil},
		{"an IP address", files("server_name: 127.0.0.1\n", ip), nil},
		{"SEC 1 key", files("server_name: a.example.com\n", sec1), nil},
		{"PKCS #1 RSA key", files("server_name: a.example.com\n", pkcs1), nil},
		{"key file with the chain in it", files(names, pemPair{good.cert, good.cert + good.key}), nil},
		{"disabled: files may be missing", tree{"services/a.yaml": web + "enabled: false\ntls: files\ntls_cert: certs/no.pem\ntls_key: certs/no.key\n"}, nil},

		{"expired", files("server_name: a.example.com\n", expired),
			[]string{"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem expired on " + expiredOn}},
		{"not yet valid", files("server_name: a.example.com\n", future),
			[]string{"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem is not valid before " + validFrom}},
		{"other names", files(names, other), []string{
			"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem does not cover a.example.com (it covers b.example.com, c.example.com)",
			"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem does not cover www.a.example.com (it covers b.example.com, c.example.com)",
		}},
		{"a wildcard certificate does not cover the bare domain", files("server_name: example.com\n", wild),
			[]string{"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem does not cover example.com (it covers *.example.com)"}},
		{"a wildcard name needs a wildcard certificate", files("server_name: '*.a.example.com'\n", good),
			[]string{"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem does not cover *.a.example.com (it covers a.example.com, www.a.example.com)"}},
		{"no names in the certificate", files("server_name: a.example.com\n", noNames),
			[]string{"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem does not cover a.example.com (it covers no host name)"}},
		{"the chain before the server's certificate", files(names, pemPair{caCert(t) + good.cert, good.key}), []string{
			"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem begins with a CA's certificate (CN=smoothserve test CA); the server's own, certificate 2 of 2, must come first, then its chain"}},
		{"mismatched key", files(names, pemPair{good.cert, other.key}),
			[]string{"$S/a.yaml:9: tls_key: key $D/certs/a.key does not match certificate $D/certs/a.pem"}},
		{"missing files", with(files(names, good), tree{"services/a.yaml": web + names + "tls: files\ntls_cert: no.pem\ntls_key: no.key\n"}),
			[]string{"$S/a.yaml:8: tls_cert: $D/no.pem: no such file", "$S/a.yaml:9: tls_key: $D/no.key: no such file"}},
		{"certificate is a folder", with(files(names, good), tree{"services/a.yaml": web + names + "tls: files\ntls_cert: certs\ntls_key: certs/a.key\n"}),
			[]string{"$S/a.yaml:8: tls_cert: $D/certs: a folder, not a file"}},
		{"not PEM", files(names, pemPair{"hello", "hello"}), []string{
			"$S/a.yaml:8: tls_cert: $D/certs/a.pem holds no PEM CERTIFICATE block",
			"$S/a.yaml:9: tls_key: $D/certs/a.key holds no PEM PRIVATE KEY block",
		}},
		{"switched", files(names, pemPair{good.key, good.cert}), []string{
			"$S/a.yaml:8: tls_cert: $D/certs/a.pem holds no PEM CERTIFICATE block",
			"$S/a.yaml:9: tls_key: $D/certs/a.key holds no PEM PRIVATE KEY block",
		}},
		{"broken certificate", files(names, pemPair{good.cert + badBlock, good.key}),
			[]string{"$S/a.yaml:8: tls_cert: $D/certs/a.pem: certificate 2 of 2 does not parse: " + badErr.Error()}},
		{"broken key", files(names, pemPair{good.cert, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
			[]string{"$S/a.yaml:9: tls_key: key $D/certs/a.key does not parse: " + badKeyErr.Error()}},
		{"encrypted key", files(names, pemPair{good.cert, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"}),
			[]string{"$S/a.yaml:9: tls_key: $D/certs/a.key: the private key is encrypted; smoothserve needs it unencrypted"}},
		{"expired, other names and a mismatched key at once", files(names, pemPair{expired.cert, good.key}), []string{
			"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem expired on " + expiredOn,
			"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem does not cover www.a.example.com (it covers a.example.com)",
			"$S/a.yaml:9: tls_key: key $D/certs/a.key does not match certificate $D/certs/a.pem",
		}},
		{"only tls_cert: it is checked, tls_key is required", with(files(names, other), tree{"services/a.yaml": web + names + "tls: files\ntls_cert: certs/a.pem\n"}), []string{
			"$S/a.yaml:7: tls_key: required with tls: files",
			"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem does not cover a.example.com (it covers b.example.com, c.example.com)",
			"$S/a.yaml:8: tls_cert: certificate $D/certs/a.pem does not cover www.a.example.com (it covers b.example.com, c.example.com)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.files["smoothserve.yaml"] = httpsMain
			checkLoadErrors(t, tt.files, tt.want)
		})
	}
}

// TestACMECARoot: a file of PEM roots, every block a certificate that
// parses; relative to smoothserve.yaml's folder.
func TestACMECARoot(t *testing.T) {
	root := newPair(t, inForce()).cert
	root2 := newPair(t, inForce()).cert
	badBlock := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	_, badErr := x509.ParseCertificate([]byte{0, 0, 0})
	tests := []struct {
		name, line string // line: line 3 of smoothserve.yaml
		ca         string // ca/root.pem, if not ""
		want       []string
	}{
		{"one root", "ACMECARoot: ca/root.pem\n", root, nil},
		{"two roots and other blocks", "ACMECARoot: ca/root.pem\n", "# roots\n" + root + newPair(t, inForce()).key + root2, nil},
		{"missing", "ACMECARoot: ca/nope.pem\n", root, []string{"$MAIN:3: ACMECARoot: $D/ca/nope.pem: no such file"}},
		{"a folder", "ACMECARoot: ca\n", root, []string{"$MAIN:3: ACMECARoot: $D/ca: a folder, not a file"}},
		{"not PEM", "ACMECARoot: ca/root.pem\n", "hello", []string{"$MAIN:3: ACMECARoot: $D/ca/root.pem holds no PEM CERTIFICATE block"}},
		{"a key only", "ACMECARoot: ca/root.pem\n", newPair(t, inForce()).key,
			[]string{"$MAIN:3: ACMECARoot: $D/ca/root.pem holds no PEM CERTIFICATE block"}},
		{"a broken block", "ACMECARoot: ca/root.pem\n", root + badBlock,
			[]string{"$MAIN:3: ACMECARoot: $D/ca/root.pem: certificate 2 of 2 does not parse: " + badErr.Error()}},
		{"empty", "ACMECARoot: ''\n", root, []string{`$MAIN:3: ACMECARoot: want a path, got ""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := tree{"smoothserve.yaml": httpsMain + tt.line, "services/a.yaml": web}
			if tt.ca != "" {
				files["ca/root.pem"] = tt.ca
			}
			checkLoadErrors(t, files, tt.want)
		})
	}
}

// TestTLSFilesValues: tls_cert and tls_key resolve against smoothserve.yaml's
// folder, as executable_path does, not the service file's; an absolute one
// stays as it is.
func TestTLSFilesValues(t *testing.T) {
	p := newPair(t, inForce("a.example.com"))
	dir := tree{}.write(t)
	tree{
		"etc/smoothserve.yaml": httpsMain,
		"etc/services/a.yaml": web + "server_name: a.example.com\ntls: files\ntls_cert: certs/a.pem\ntls_key: " +
			filepath.Join(dir, "key/a.key") + "\n",
		"etc/bin/app":     script,
		"etc/certs/a.pem": p.cert,
		"key/a.key":       p.key,
	}.writeIn(t, dir)
	c := mustLoad(t, filepath.Join(dir, "etc"))
	s := c.Services[0]
	checkEqual(t, "TLS", s.TLS, TLSFiles)
	checkEqual(t, "TLSCert", s.TLSCert, filepath.Join(dir, "etc/certs/a.pem"))
	checkEqual(t, "TLSKey", s.TLSKey, filepath.Join(dir, "key/a.key"))
	checkEqual(t, "HTTPSRedirect", s.HTTPSRedirect, true)
	checkEqual(t, "TLSServices", c.TLSServices(), []*Service{s})
}
