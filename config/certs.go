package config

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"smoothserve/internal/leafcheck"
)

// The certificate files of tls: files and ACMECARoot, read as the daemon
// will read them, so that --check finds what would stop it or break a
// handshake.

// checkCertFiles checks tls_cert and tls_key of a tls: files service: each
// readable, the certificate in force and covering every server_name (by
// leafcheck, which the daemon also asks of a pair that changes on disk), the
// key its own. A key absent or rejected is reported by checkServiceTLS.
func (l *loader) checkCertFiles(s *Service, k *fileKeys) {
	var leaf *x509.Certificate
	var certPEM []byte
	if k.set["tls_cert"] {
		certs, data, msg := readCertificates(s.TLSCert)
		if msg != "" {
			l.add(k.errorf("tls_cert", "%s", msg))
		} else if i := serverAfterCA(certs); i > 0 {
			// Its names and key would be found wrong, and the order is why.
			l.add(k.errorf("tls_cert", "certificate %s begins with a CA's certificate (%s); the server's own, certificate %d of %d, must come first, then its chain",
				s.TLSCert, certs[0].Subject, i+1, len(certs)))
		} else {
			leaf, certPEM = certs[0], data
			for _, msg := range leafcheck.Problems(s.TLSCert, leaf, s.ServerNames, time.Now()) {
				l.add(k.errorf("tls_cert", "%s", msg))
			}
		}
	}
	if !k.set["tls_key"] {
		return
	}
	keyPEM, key, msg := readPrivateKey(s.TLSKey)
	switch {
	case msg != "":
		l.add(k.errorf("tls_key", "%s", msg))
	case leaf == nil:
	case !samePublicKey(key.Public(), leaf.PublicKey):
		l.add(k.errorf("tls_key", "key %s does not match certificate %s", s.TLSKey, s.TLSCert))
	default:
		// What the daemon will call; anything the checks above let by.
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			l.add(k.errorf("tls_key", "key %s and certificate %s are not a usable pair: %v", s.TLSKey, s.TLSCert, err))
		}
	}
}

// serverAfterCA is the index of the first certificate of certs that is not
// a CA's when the first is a CA's (a chain written in the wrong order:
// crypto/tls serves the first as the server's), else 0.
func serverAfterCA(certs []*x509.Certificate) int {
	if !certs[0].IsCA {
		return 0
	}
	for i, c := range certs[1:] {
		if !c.IsCA {
			return i + 1
		}
	}
	return 0
}

// caRootProblem is what stops path from being a file of extra roots:
// unreadable, no CERTIFICATE block, or one that does not parse. "" if none.
func caRootProblem(path string) string {
	_, _, msg := readCertificates(path)
	return msg
}

// readCertificates parses every CERTIFICATE block of the PEM file at path,
// in order, returning them with the file's text; or a message saying what
// is wrong, naming path.
func readCertificates(path string) ([]*x509.Certificate, []byte, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, path + ": " + unreadable(err)
	}
	var blocks []*pem.Block
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) == 0 {
		return nil, nil, path + " holds no PEM CERTIFICATE block"
	}
	certs := make([]*x509.Certificate, len(blocks))
	for i, b := range blocks {
		if certs[i], err = x509.ParseCertificate(b.Bytes); err != nil {
			return nil, nil, fmt.Sprintf("%s: certificate %d of %d does not parse: %v", path, i+1, len(blocks), err)
		}
	}
	return certs, data, ""
}

// readPrivateKey parses the first PEM private key of the file at path, in
// any of the encodings crypto/tls reads (PKCS #8, PKCS #1, SEC 1),
// returning it with the file's text; or a message saying what is wrong,
// naming path.
func readPrivateKey(path string) ([]byte, crypto.Signer, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, path + ": " + unreadable(err)
	}
	var block *pem.Block
	for rest := data; block == nil; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, nil, path + " holds no PEM PRIVATE KEY block"
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			block = b
		}
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
		return nil, nil, path + ": the private key is encrypted; smoothserve needs it unencrypted"
	}
	key, err := parsePrivateKey(block)
	if err != nil {
		return nil, nil, fmt.Sprintf("key %s does not parse: %v", path, err)
	}
	return data, key, ""
}

// parsePrivateKey tries each encoding, reporting the error of the one the
// block's type names.
func parsePrivateKey(b *pem.Block) (crypto.Signer, error) {
	var keys [3]any
	var errs [3]error
	keys[0], errs[0] = x509.ParsePKCS8PrivateKey(b.Bytes)
	keys[1], errs[1] = x509.ParsePKCS1PrivateKey(b.Bytes)
	keys[2], errs[2] = x509.ParseECPrivateKey(b.Bytes)
	for i, key := range keys {
		if errs[i] != nil {
			continue
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T cannot sign", key)
		}
		return signer, nil
	}
	switch b.Type {
	case "RSA PRIVATE KEY":
		return nil, errs[1]
	case "EC PRIVATE KEY":
		return nil, errs[2]
	}
	return nil, errs[0]
}

// samePublicKey reports whether a and b are the same public key; every key
// type crypto/x509 parses has an Equal method.
func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
