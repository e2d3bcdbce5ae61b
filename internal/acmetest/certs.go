package acmetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// listenerFiles are the PEM files for pebble's own HTTPS listeners.
type listenerFiles struct {
	caFile, certFile, keyFile string
	ca                        *x509.Certificate
}

// writeListenerFiles makes a throwaway CA and a leaf it signs for
// localhost, 127.0.0.1 and ::1, and writes them to dir. Generated rather
// than taken from pebble's module directory so that nothing depends on
// that layout, and so that each Start has its own trust anchor.
func writeListenerFiles(dir string) (listenerFiles, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return listenerFiles{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "acmetest listener CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return listenerFiles{}, fmt.Errorf("acmetest: creating the listener CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return listenerFiles{}, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return listenerFiles{}, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return listenerFiles{}, fmt.Errorf("acmetest: creating the listener certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return listenerFiles{}, err
	}
	f := listenerFiles{
		caFile:   filepath.Join(dir, "listener-ca.pem"),
		certFile: filepath.Join(dir, "listener-cert.pem"),
		keyFile:  filepath.Join(dir, "listener-key.pem"),
		ca:       ca,
	}
	for _, w := range []struct {
		path, typ string
		der       []byte
	}{
		{f.caFile, "CERTIFICATE", caDER},
		{f.certFile, "CERTIFICATE", leafDER},
		{f.keyFile, "PRIVATE KEY", keyDER},
	} {
		b := pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der})
		if err := os.WriteFile(w.path, b, 0o600); err != nil {
			return listenerFiles{}, fmt.Errorf("acmetest: %w", err)
		}
	}
	return f, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// parseRoot parses the single PEM certificate of a root.
func parseRoot(pemBytes []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM certificate in %q", truncate(string(pemBytes), 200))
	}
	return x509.ParseCertificate(block.Bytes)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
