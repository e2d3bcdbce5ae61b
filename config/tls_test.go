package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// httpsMain is a smoothserve.yaml serving HTTPS: 1 ProxyPort, 2 HTTPSPort.
const httpsMain = "ProxyPort: 8085\nHTTPSPort: 8443\n"

// otherService is a second valid service, on port 8086. Its lines: 1 name, 2 port,
// 3 start_instance_port, 4 instance_count, 5 executable_path.
const otherService = "name: b\nport: 8086\nstart_instance_port: 9100\ninstance_count: 1\nexecutable_path: bin/app\n"

func TestTLSDefaults(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\n", "services/a.yaml": web, "bin/app": script}.write(t)
	c := mustLoad(t, dir)
	checkEqual(t, "HTTPSPort", c.HTTPSPort, 0)
	checkEqual(t, "ACMEDirectory", c.ACMEDirectory, "https://acme-v02.api.letsencrypt.org/directory")
	checkEqual(t, "ACMEEmail", c.ACMEEmail, "")
	checkEqual(t, "ACMECARoot", c.ACMECARoot, "")
	checkEqual(t, "CertDir", c.CertDir, filepath.Join(dir, "certs"))
	s := c.Services[0]
	checkEqual(t, "TLS", s.TLS, TLSOff)
	checkEqual(t, "TLSCert", s.TLSCert, "")
	checkEqual(t, "TLSKey", s.TLSKey, "")
	checkEqual(t, "HTTPSRedirect", s.HTTPSRedirect, false)
	checkEqual(t, "Compress", s.Compress, false)
	checkEqual(t, "TLSServices", len(c.TLSServices()), 0)
}

// TestTLSMainValues: the HTTPS keys of smoothserve.yaml as written, and
// where CertDir goes.
func TestTLSMainValues(t *testing.T) {
	tests := []struct {
		name, main string
		check      func(t *testing.T, dir string, c *Config)
	}{
		{"every key",
			httpsMain + "ACMEDirectory: https://localhost:14000/dir\nACMEEmail: ops@example.com\nACMECARoot: ca.pem\nCertDir: /var/lib/ss/certs/\n",
			func(t *testing.T, dir string, c *Config) {
				checkEqual(t, "HTTPSPort", c.HTTPSPort, 8443)
				checkEqual(t, "ACMEDirectory", c.ACMEDirectory, "https://localhost:14000/dir")
				checkEqual(t, "ACMEEmail", c.ACMEEmail, "ops@example.com")
				checkEqual(t, "ACMECARoot", c.ACMECARoot, filepath.Join(dir, "ca.pem"))
				checkEqual(t, "CertDir", c.CertDir, "/var/lib/ss/certs")
				checkEqual(t, "Lines", c.Lines, map[string]int{"ProxyPort": 1, "HTTPSPort": 2, "ACMEDirectory": 3,
					"ACMEEmail": 4, "ACMECARoot": 5, "CertDir": 6})
			}},
		{"CertDir below StateDir", "ProxyPort: 8085\nStateDir: /var/lib/ss\n", func(t *testing.T, dir string, c *Config) {
			checkEqual(t, "CertDir", c.CertDir, "/var/lib/ss/certs")
		}},
		{"CertDir below a relative StateDir", "ProxyPort: 8085\nStateDir: state\n", func(t *testing.T, dir string, c *Config) {
			checkEqual(t, "CertDir", c.CertDir, filepath.Join(dir, "state/certs"))
		}},
		{"CertDir relative to smoothserve.yaml's folder, not StateDir", "ProxyPort: 8085\nStateDir: state\nCertDir: tls\n",
			func(t *testing.T, dir string, c *Config) {
				checkEqual(t, "CertDir", c.CertDir, filepath.Join(dir, "tls"))
			}},
		{"HTTPSPort 0 is unset", "ProxyPort: 8085\nHTTPSPort: 0\n", func(t *testing.T, dir string, c *Config) {
			checkEqual(t, "HTTPSPort", c.HTTPSPort, 0)
		}},
		{"null values are the defaults", "ProxyPort: 8085\nACMEDirectory:\nCertDir:\n", func(t *testing.T, dir string, c *Config) {
			checkEqual(t, "ACMEDirectory", c.ACMEDirectory, DefaultACMEDirectory)
			checkEqual(t, "CertDir", c.CertDir, filepath.Join(dir, "certs"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree{"smoothserve.yaml": tt.main, "services/a.yaml": web, "bin/app": script,
				"ca.pem": newPair(t, inForce()).cert}.write(t)
			c := mustLoad(t, dir)
			tt.check(t, dir, c)
			checkEqual(t, "ProxyPorts", c.ProxyPorts(), []int{8085})
		})
	}
}

// TestTLSServiceValues: tls, https_redirect and compress as written.
func TestTLSServiceValues(t *testing.T) {
	tests := []struct {
		line           string // added to web on a.example.com
		tls            string
		redirect, gzip bool
		served         bool
	}{
		{"", TLSOff, false, false, false},
		{"tls: off\n", TLSOff, false, false, false},
		{"tls: off\nhttps_redirect: false\ncompress: true\n", TLSOff, false, true, false},
		{"tls: auto\n", TLSAuto, true, false, true},
		{"tls: auto\nhttps_redirect: false\n", TLSAuto, false, false, true},
		{"tls: auto\nhttps_redirect: true\ncompress: false\n", TLSAuto, true, false, true},
		{"tls: auto\nhttps_redirect:\ncompress:\n", TLSAuto, true, false, true},
		{"tls: auto\nenabled: false\n", TLSAuto, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			dir := tree{"smoothserve.yaml": httpsMain, "services/a.yaml": web + "server_name: a.example.com\n" + tt.line, "bin/app": script}.write(t)
			c := mustLoad(t, dir)
			s := c.Services[0]
			checkEqual(t, "TLS", s.TLS, tt.tls)
			checkEqual(t, "HTTPSRedirect", s.HTTPSRedirect, tt.redirect)
			checkEqual(t, "Compress", s.Compress, tt.gzip)
			checkEqual(t, "served over HTTPS", len(c.TLSServices()) == 1, tt.served)
			checkEqual(t, "ProxyPorts", c.ProxyPorts(), []int{8085})
		})
	}
}

// TestTLSServicesAndProxyPorts: TLSServices is the enabled services with
// tls on; ProxyPorts never holds HTTPSPort, even in a Config Load did not
// check.
func TestTLSServicesAndProxyPorts(t *testing.T) {
	a := &Service{Name: "a", Port: 8085, Enabled: true, TLS: TLSAuto}
	b := &Service{Name: "b", Port: 8086, Enabled: true, TLS: TLSOff}
	c := &Service{Name: "c", Port: 8085, Enabled: false, TLS: TLSFiles}
	d := &Service{Name: "d", Port: 8443, Enabled: true, TLS: TLSFiles}
	cfg := &Config{ProxyPort: 8085, HTTPSPort: 8443, Services: []*Service{a, b, c, d}}
	checkEqual(t, "TLSServices", cfg.TLSServices(), []*Service{a, d})
	checkEqual(t, "ProxyPorts", cfg.ProxyPorts(), []int{8085, 8086})
	cfg.HTTPSPort = 0
	checkEqual(t, "ProxyPorts without HTTPSPort", cfg.ProxyPorts(), []int{8085, 8086, 8443})
}

// TestTLSMainRules checks the rules of smoothserve.yaml's HTTPS keys with
// the exact message and line each reports.
func TestTLSMainRules(t *testing.T) {
	tests := []struct {
		name  string
		files tree // added to bin/app; services/a.yaml is web unless given
		want  []string
	}{
		{"valid", tree{"smoothserve.yaml": httpsMain}, nil},
		{"HTTPSPort out of range", tree{"smoothserve.yaml": "ProxyPort: 8085\nHTTPSPort: 70000\n"},
			[]string{"$MAIN:2: HTTPSPort: must be 1..65535, got 70000"}},
		{"HTTPSPort negative", tree{"smoothserve.yaml": "ProxyPort: 8085\nHTTPSPort: -1\n"},
			[]string{"$MAIN:2: HTTPSPort: must be 1..65535, got -1"}},
		{"HTTPSPort quoted", tree{"smoothserve.yaml": "ProxyPort: 8085\nHTTPSPort: '8443'\n"},
			[]string{`$MAIN:2: HTTPSPort: want an integer, got "8443"`}},
		{"HTTPSPort is ProxyPort", tree{"smoothserve.yaml": "ProxyPort: 8085\nHTTPSPort: 8085\n"},
			[]string{"$MAIN:2: HTTPSPort: 8085 is also ProxyPort (line 1); HTTPS needs a port of its own"}},
		{"HTTPSPort is CommandPort", tree{"smoothserve.yaml": "ProxyPort: 8085\nCommandPort: 8443\nHTTPSPort: 8443\n"},
			[]string{"$MAIN:3: HTTPSPort: 8443 is also CommandPort (line 2); HTTPS needs a port of its own"}},
		{"a service's port is HTTPSPort",
			tree{"smoothserve.yaml": httpsMain, "services/a.yaml": web, "services/b.yaml": strings.Replace(otherService, "8086", "8443", 1)},
			[]string{"$S/b.yaml:2: port: 8443 is HTTPSPort ($MAIN:2), where TLS is served; plain HTTP needs another port"}},
		{"a disabled service's port may be HTTPSPort",
			tree{"smoothserve.yaml": httpsMain, "services/b.yaml": strings.Replace(otherService, "8086", "8443", 1) + "enabled: false\n"},
			nil},
		{"instance ports hold HTTPSPort",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nHTTPSPort: 9001\n"},
			[]string{`$S/a.yaml:3: start_instance_port: service "web" reserves ports 9000..9003, which include proxy port 9001 (HTTPSPort of $MAIN:2)`}},
		{"ACMEDirectory over http", tree{"smoothserve.yaml": httpsMain + "ACMEDirectory: http://127.0.0.1:14000/dir\n"},
			[]string{`$MAIN:3: ACMEDirectory: want an https:// URL, such as https://acme-v02.api.letsencrypt.org/directory, got "http://127.0.0.1:14000/dir"`}},
		{"ACMEDirectory without a scheme", tree{"smoothserve.yaml": httpsMain + "ACMEDirectory: acme.example.com/directory\n"},
			[]string{`$MAIN:3: ACMEDirectory: want an https:// URL, such as https://acme-v02.api.letsencrypt.org/directory, got "acme.example.com/directory"`}},
		{"ACMEDirectory without a host", tree{"smoothserve.yaml": httpsMain + "ACMEDirectory: https:///directory\n"},
			[]string{`$MAIN:3: ACMEDirectory: want an https:// URL, such as https://acme-v02.api.letsencrypt.org/directory, got "https:///directory"`}},
		{"ACMEDirectory empty", tree{"smoothserve.yaml": httpsMain + "ACMEDirectory: ''\n"},
			[]string{`$MAIN:3: ACMEDirectory: want an https:// URL, such as https://acme-v02.api.letsencrypt.org/directory, got ""`}},
		{"ACMEDirectory a list", tree{"smoothserve.yaml": httpsMain + "ACMEDirectory: [https://a.example]\n"},
			[]string{`$MAIN:3: ACMEDirectory: want a string, got a list`}},
		{"ACMEEmail empty is unset", tree{"smoothserve.yaml": httpsMain + "ACMEEmail: ''\n"}, nil},
		{"ACMEEmail without @", tree{"smoothserve.yaml": httpsMain + "ACMEEmail: ops.example.com\n"},
			[]string{`$MAIN:3: ACMEEmail: want an email address, such as admin@example.com, got "ops.example.com"`}},
		{"ACMEEmail with two @", tree{"smoothserve.yaml": httpsMain + "ACMEEmail: ops@a@example.com\n"},
			[]string{`$MAIN:3: ACMEEmail: want an email address, such as admin@example.com, got "ops@a@example.com"`}},
		{"ACMEEmail with a space", tree{"smoothserve.yaml": httpsMain + "ACMEEmail: ops @example.com\n"},
			[]string{`$MAIN:3: ACMEEmail: want an email address, such as admin@example.com, got "ops @example.com"`}},
		{"ACMEEmail without a domain", tree{"smoothserve.yaml": httpsMain + "ACMEEmail: ops@\n"},
			[]string{`$MAIN:3: ACMEEmail: want an email address, such as admin@example.com, got "ops@"`}},
		{"CertDir need not exist", tree{"smoothserve.yaml": httpsMain + "CertDir: var/certs\n"}, nil},
		{"CertDir is a file", tree{"smoothserve.yaml": httpsMain + "CertDir: bin/app\n"},
			[]string{"$MAIN:3: CertDir: $D/bin/app: is a file, not a folder"}},
		{"CertDir below a file", tree{"smoothserve.yaml": httpsMain + "CertDir: bin/app/certs\n"},
			[]string{"$MAIN:3: CertDir: $D/bin/app/certs: not a folder"}},
		{"CertDir empty", tree{"smoothserve.yaml": httpsMain + "CertDir: ''\n"},
			[]string{`$MAIN:3: CertDir: want a path, got ""`}},
		{"misspelt key", tree{"smoothserve.yaml": "ProxyPort: 8085\nHttpsPort: 8443\n"},
			[]string{"$MAIN:2: HttpsPort: unknown key (did you mean HTTPSPort?)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := tt.files["services/a.yaml"]; !ok {
				tt.files["services/a.yaml"] = web
			}
			checkLoadErrors(t, tt.files, tt.want)
		})
	}
}

// TestLoadMainTLS: LoadMain checks HTTPSPort and the ACME keys' values but
// reads no file they name, so smoothtool reaches the daemon while one is
// broken.
func TestLoadMainTLS(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\nHTTPSPort: 8085\nACMECARoot: nope.pem\nCertDir: x\n", "x": "a file"}.write(t)
	_, err := LoadMain(filepath.Join(dir, "smoothserve.yaml"))
	checkEqual(t, "errors", errorLines(t, err), []string{
		expand(dir, "$MAIN:2: HTTPSPort: 8085 is also ProxyPort (line 1); HTTPS needs a port of its own"),
	})
}

// TestTLSServiceRules checks the rules of the tls keys of a service file,
// and of hosts on HTTPSPort, with the exact message and line each reports.
// web's lines: 1 name, 2 port, 3 start_instance_port, 4 instance_count,
// 5 executable_path; otherService's the same, on port 8086.
func TestTLSServiceRules(t *testing.T) {
	tests := []struct {
		name  string
		main  string // smoothserve.yaml; httpsMain if ""
		files tree   // added to bin/app
		want  []string
	}{
		{"tls auto", "", tree{"services/a.yaml": web + "server_name: a.com\ntls: auto\n"}, nil},
		{"tls not a value", "", tree{"services/a.yaml": web + "server_name: a.com\ntls: on\n"},
			[]string{`$S/a.yaml:7: tls: want "off", "auto" or "files", got "on"`}},
		{"tls a bool", "", tree{"services/a.yaml": web + "tls: true\n"},
			[]string{`$S/a.yaml:6: tls: want "off", "auto" or "files", got "true"`}},
		{"tls in capitals", "", tree{"services/a.yaml": web + "tls: AUTO\n"},
			[]string{`$S/a.yaml:6: tls: want "off", "auto" or "files", got "AUTO"`}},
		{"tls files without tls_cert and tls_key", "", tree{"services/a.yaml": web + "server_name: a.com\ntls: files\n"},
			[]string{"$S/a.yaml:7: tls_cert: required with tls: files", "$S/a.yaml:7: tls_key: required with tls: files"}},
		{"tls_cert with tls auto", "", tree{"services/a.yaml": web + "server_name: a.com\ntls: auto\ntls_cert: a.pem\n"},
			[]string{`$S/a.yaml:8: tls_cert: used only with tls: files; tls is "auto"`}},
		{"tls_key without tls", "", tree{"services/a.yaml": web + "tls_key: a.key\n"},
			[]string{`$S/a.yaml:6: tls_key: used only with tls: files; tls is "off"`}},
		{"tls_cert empty", "", tree{"services/a.yaml": web + "server_name: a.com\ntls: files\ntls_cert: ''\n"},
			[]string{`$S/a.yaml:7: tls_key: required with tls: files`, `$S/a.yaml:8: tls_cert: want a path, got ""`}},
		{"https_redirect without tls", "", tree{"services/a.yaml": web + "https_redirect: true\n"},
			[]string{`$S/a.yaml:6: https_redirect: true needs tls: auto or tls: files; tls is "off"`}},
		{"https_redirect false without tls", "", tree{"services/a.yaml": web + "https_redirect: false\ntls: off\n"}, nil},
		{"https_redirect not a bool", "", tree{"services/a.yaml": web + "https_redirect: yes\n"},
			[]string{`$S/a.yaml:6: https_redirect: want true or false, got "yes"`}},
		{"compress not a bool", "", tree{"services/a.yaml": web + "compress: gzip\n"},
			[]string{`$S/a.yaml:6: compress: want true or false, got "gzip"`}},
		{"misspelt key", "", tree{"services/a.yaml": web + "tls_crt: a.pem\n"},
			[]string{`$S/a.yaml:6: tls_crt: unknown key (did you mean tls_cert?)`}},

		{"tls auto without HTTPSPort", "ProxyPort: 8085\n", tree{"services/a.yaml": web + "server_name: a.com\ntls: auto\n"},
			[]string{"$S/a.yaml:7: tls: auto needs HTTPSPort, which is not set in $MAIN"}},
		{"tls files without HTTPSPort", "ProxyPort: 8085\n", tree{"services/a.yaml": web + "server_name: a.com\ntls: files\n"}, []string{
			"$S/a.yaml:7: tls_cert: required with tls: files",
			"$S/a.yaml:7: tls_key: required with tls: files",
			"$S/a.yaml:7: tls: files needs HTTPSPort, which is not set in $MAIN",
		}},
		{"disabled tls auto without HTTPSPort", "ProxyPort: 8085\n", tree{"services/a.yaml": web + "server_name: a.com\ntls: auto\nenabled: false\n"}, nil},
		{"a bad HTTPSPort is not blamed on the services", "ProxyPort: 8085\nHTTPSPort: https\n",
			tree{"services/a.yaml": web + "server_name: a.com\ntls: auto\n"},
			[]string{`$MAIN:2: HTTPSPort: want an integer, got "https"`}},
		{"tls auto without server_name", "", tree{"services/a.yaml": web + "tls: auto\n"},
			[]string{"$S/a.yaml:6: tls: auto needs a server_name: certificates are issued for host names"}},
		{"tls files without server_name", "", tree{"services/a.yaml": web + "tls: files\ntls_cert: a.pem\ntls_key: a.key\n"}, []string{
			"$S/a.yaml:6: tls: files needs a server_name: the certificate is served for the names clients ask for (SNI), and with none every handshake would fail",
			"$S/a.yaml:7: tls_cert: $D/a.pem: no such file",
			"$S/a.yaml:8: tls_key: $D/a.key: no such file",
		}},
		{"tls auto with a wildcard", "", tree{"services/a.yaml": web + "server_name: a.com, *.a.com\ntls: auto\n"},
			[]string{`$S/a.yaml:7: tls: auto cannot get a certificate for "*.a.com": a wildcard needs the ACME DNS challenge, which smoothserve does not support; use tls: files`}},

		{"one host on HTTPSPort from two plain ports", "", tree{
			"services/a.yaml": web + "server_name: a.com\ntls: auto\n",
			"services/b.yaml": otherService + "server_name: a.com\ntls: auto\n",
		}, []string{`$S/b.yaml:6: server_name: host "a.com" on HTTPS port 8443 is claimed by both service "b" and service "web" ($S/a.yaml:6)`}},
		{"one host on two plain ports, one with tls", "", tree{
			"services/a.yaml": web + "server_name: a.com\ntls: auto\n",
			"services/b.yaml": otherService + "server_name: a.com\n",
		}, nil},
		{"one host on HTTPSPort, a disabled service", "", tree{
			"services/a.yaml": web + "server_name: a.com\ntls: auto\n",
			"services/b.yaml": otherService + "server_name: a.com\ntls: auto\nenabled: false\n",
		}, nil},
		{"one host on one plain port and HTTPSPort is reported once", "", tree{
			"services/a.yaml": web + "server_name: a.com\ntls: auto\n",
			"services/b.yaml": "name: b\nstart_instance_port: 9100\ninstance_count: 1\nexecutable_path: bin/app\nserver_name: a.com\ntls: auto\n",
		}, []string{`$S/b.yaml:5: server_name: host "a.com" on port 8085 is claimed by both service "b" and service "web" ($S/a.yaml:6)`}},
		{"two default_server on HTTPSPort", "", tree{
			"services/a.yaml": web + "server_name: a.com\ndefault_server: true\ntls: auto\n",
			"services/b.yaml": otherService + "server_name: b.com\ndefault_server: true\ntls: auto\n",
		}, []string{`$S/b.yaml:7: default_server: service "b" (default_server: true) and service "web" (default_server: true, $S/a.yaml:7) are both the default service of HTTPS port 8443; a port has at most one`}},
		{"default_server on HTTPSPort and one without tls", "", tree{
			"services/a.yaml": web + "server_name: a.com\ndefault_server: true\ntls: auto\n",
			"services/b.yaml": otherService + "server_name: b.com\ndefault_server: true\n",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.files["smoothserve.yaml"] = tt.main
			if tt.main == "" {
				tt.files["smoothserve.yaml"] = httpsMain
			}
			checkLoadErrors(t, tt.files, tt.want)
		})
	}
}
