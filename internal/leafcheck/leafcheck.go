package leafcheck

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// Problems is what is wrong with leaf, read from path, as the certificate
// of a server for names at now: not in force, or not covering one of names
// (a wildcard name is covered by the same wildcard only, as VerifyHostname
// compares what it cannot match). Each message names path; none: nil.
func Problems(path string, leaf *x509.Certificate, names []string, now time.Time) []string {
	var msgs []string
	if now.After(leaf.NotAfter) {
		msgs = append(msgs, fmt.Sprintf("certificate %s expired on %s", path, leaf.NotAfter.UTC().Format(time.DateOnly)))
	}
	if now.Before(leaf.NotBefore) {
		msgs = append(msgs, fmt.Sprintf("certificate %s is not valid before %s", path, leaf.NotBefore.UTC().Format(time.DateOnly)))
	}
	for _, name := range names {
		if leaf.VerifyHostname(name) != nil {
			msgs = append(msgs, fmt.Sprintf("certificate %s does not cover %s (%s)", path, name, covers(leaf)))
		}
	}
	return msgs
}

// covers lists the hosts a certificate is for, as a message quotes them.
func covers(c *x509.Certificate) string {
	hosts := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	if len(hosts) == 0 {
		return "it covers no host name"
	}
	return "it covers " + strings.Join(hosts, ", ")
}
