package acmetest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"smoothserve/internal/testcert"
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
	ca, err := testcert.NewCA("acmetest listener CA", 7*24*time.Hour)
	if err != nil {
		return listenerFiles{}, fmt.Errorf("acmetest: creating the listener CA: %w", err)
	}
	certPEM, keyPEM, err := ca.Leaf(0, 7*24*time.Hour, "localhost", "127.0.0.1", "::1")
	if err != nil {
		return listenerFiles{}, fmt.Errorf("acmetest: creating the listener certificate: %w", err)
	}
	f := listenerFiles{
		caFile:   filepath.Join(dir, "listener-ca.pem"),
		certFile: filepath.Join(dir, "listener-cert.pem"),
		keyFile:  filepath.Join(dir, "listener-key.pem"),
		ca:       ca.Cert,
	}
	for _, w := range []struct {
		path string
		data []byte
	}{{f.caFile, ca.PEM}, {f.certFile, certPEM}, {f.keyFile, keyPEM}} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return listenerFiles{}, fmt.Errorf("acmetest: %w", err)
		}
	}
	return f, nil
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
