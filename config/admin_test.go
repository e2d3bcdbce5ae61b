package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hash is a bcrypt hash (of "secret", cost 4).
const hash = "$2a$04$4XFE8x9qdGxc.4/gC38XpOwo8r9x.kDdMSPs9lVMNY2/N5m42ablS"

// TestAccessLogAndHealthDefaults: the keys of issue 18 left out.
func TestAccessLogAndHealthDefaults(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\nLogDir: var/log\n", "services/a.yaml": web, "bin/app": script}.write(t)
	c := mustLoad(t, dir)
	checkEqual(t, "AccessLog", c.AccessLog, filepath.Join(dir, "var/log/access.log"))
	checkEqual(t, "AccessLogFormat", c.AccessLogFormat, AccessLogCombined)
	checkEqual(t, "AdminAddr", c.AdminAddr, "")
	checkEqual(t, "AdminAuth", len(c.AdminAuth), 0)
	s := c.Services[0]
	checkEqual(t, "service AccessLog", s.AccessLog, "")
	checkEqual(t, "HealthCheckInterval", s.HealthCheckInterval, 10*time.Second)
	checkEqual(t, "HealthCheckFails", s.HealthCheckFails, 3)
	checkEqual(t, "UnhealthyRestartAfter", s.UnhealthyRestartAfter, 60*time.Second)
	checkEqual(t, "Warnings", len(c.Warnings), 0)
}

// TestAccessLogAndAdminValues: the keys as written.
func TestAccessLogAndAdminValues(t *testing.T) {
	tests := []struct {
		name, main, svc string // main: added to "ProxyPort: 8085\n"; svc: added to web
		check           func(t *testing.T, dir string, c *Config)
	}{
		{"access logs off", "AccessLog: OFF\n", "access_log: off\n", func(t *testing.T, dir string, c *Config) {
			checkEqual(t, "AccessLog", c.AccessLog, "")
			checkEqual(t, "service AccessLog", c.Services[0].AccessLog, AccessLogOff)
		}},
		{"relative paths", "AccessLog: logs/all.log\nAccessLogFormat: json\n", "access_log: ../web/access.log\n",
			func(t *testing.T, dir string, c *Config) {
				checkEqual(t, "AccessLog", c.AccessLog, filepath.Join(dir, "logs/all.log"))
				checkEqual(t, "AccessLogFormat", c.AccessLogFormat, AccessLogJSON)
				checkEqual(t, "service AccessLog", c.Services[0].AccessLog, filepath.Join(filepath.Dir(dir), "web/access.log"))
			}},
		{"absolute paths and a device", "AccessLog: /dev/stdout\n", "access_log: /var/log/web/\n",
			func(t *testing.T, dir string, c *Config) {
				checkEqual(t, "AccessLog", c.AccessLog, "/dev/stdout")
				checkEqual(t, "service AccessLog", c.Services[0].AccessLog, "/var/log/web")
			}},
		{"null values are the defaults", "AccessLog:\nAccessLogFormat:\nAdminAddr:\n", "access_log:\n",
			func(t *testing.T, dir string, c *Config) {
				checkEqual(t, "AccessLog", c.AccessLog, filepath.Join(dir, "logs/access.log"))
				checkEqual(t, "AccessLogFormat", c.AccessLogFormat, AccessLogCombined)
				checkEqual(t, "AdminAddr", c.AdminAddr, "")
				checkEqual(t, "service AccessLog", c.Services[0].AccessLog, "")
			}},
		{"loopback admin without auth", "AdminAddr: 127.0.0.1:9180\n", "", func(t *testing.T, dir string, c *Config) {
			checkEqual(t, "AdminAddr", c.AdminAddr, "127.0.0.1:9180")
		}},
		{"admin users", "AdminAddr: 0.0.0.0:9180\nAdminAuth:\n  - alice:" + hash + "\n  - 'bob:" + hash + "'\n", "",
			func(t *testing.T, dir string, c *Config) {
				checkEqual(t, "AdminAuth", c.AdminAuth, []AdminUser{{"alice", hash}, {"bob", hash}})
				checkEqual(t, "Lines", c.Lines["AdminAuth"], 3)
			}},
		{"health keys", "", "health_check: /healthz\nhealth_check_interval: 200ms\nhealth_check_fails: 1\nunhealthy_restart_after: 0\n",
			func(t *testing.T, dir string, c *Config) {
				s := c.Services[0]
				checkEqual(t, "HealthCheckInterval", s.HealthCheckInterval, 200*time.Millisecond)
				checkEqual(t, "HealthCheckFails", s.HealthCheckFails, 1)
				checkEqual(t, "UnhealthyRestartAfter", s.UnhealthyRestartAfter, time.Duration(0))
				checkEqual(t, "Warnings", len(c.Warnings), 0)
			}},
		{"no checks after start", "", "health_check: /healthz\nhealth_check_interval: 0\n", func(t *testing.T, dir string, c *Config) {
			checkEqual(t, "HealthCheckInterval", c.Services[0].HealthCheckInterval, time.Duration(0))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree{"etc/smoothserve.yaml": "ProxyPort: 8085\n" + tt.main, "etc/services/a.yaml": web + tt.svc, "etc/bin/app": script}.write(t)
			c := mustLoad(t, filepath.Join(dir, "etc"))
			tt.check(t, filepath.Join(dir, "etc"), c)
		})
	}
}

// TestHealthKeysWithoutHealthCheck: allowed, with a warning each, since
// they do nothing.
func TestHealthKeysWithoutHealthCheck(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\nAdminAuth: []\n", "bin/app": script,
		"services/a.yaml": web + "health_check_interval: 1s\nunhealthy_restart_after: 5\n"}.write(t)
	c := mustLoad(t, dir)
	const why = ": has no effect without health_check: instances are checked after start only with an HTTP health check"
	checkEqual(t, "Warnings", c.Warnings, []string{
		expand(dir, "$MAIN:2: AdminAuth: set, but AdminAddr is not: there is no admin listener to guard"),
		expand(dir, "$S/a.yaml:6: health_check_interval"+why),
		expand(dir, "$S/a.yaml:7: unhealthy_restart_after"+why),
	})
}

// TestAccessLogAndAdminRules checks each rule with the exact message and
// line it reports. smoothserve.yaml's line 1 is ProxyPort: 8085; web's
// lines: 1 name, 2 port, 3 start_instance_port (9000, 2 instances: up to
// 9003), 4 instance_count, 5 executable_path.
func TestAccessLogAndAdminRules(t *testing.T) {
	main := func(extra string) tree {
		return tree{"smoothserve.yaml": "ProxyPort: 8085\n" + extra, "services/a.yaml": web}
	}
	auth := "AdminAuth: ['alice:" + hash + "']\n"
	reachable := func(addr string) string {
		return "$MAIN:2: AdminAddr " + addr + " is reachable from other machines: set AdminAuth"
	}
	tests := []struct {
		name  string
		files tree
		want  []string
	}{
		{"AccessLogFormat", main("AccessLogFormat: xml\n"), []string{`$MAIN:2: AccessLogFormat: want "combined" or "json", got "xml"`}},
		{"AccessLog false", main("AccessLog: false\n"), []string{`$MAIN:2: AccessLog: want a path or off, got "false"`}},
		{"AccessLog a folder", main("AccessLog: services\n"), []string{"$MAIN:2: AccessLog: $D/services: is a folder, not a file"}},
		{"AccessLog below a file", main("AccessLog: bin/app/access.log\n"), []string{"$MAIN:2: AccessLog: $D/bin/app/access.log: not a folder"}},
		{"AccessLog in a folder not made yet", main("AccessLog: var/log/access.log\n"), nil},
		{"access_log a folder", tree{"services/a.yaml": web + "access_log: bin\n"}, []string{"$S/a.yaml:6: access_log: $D/bin: is a folder, not a file"}},
		{"access_log of a disabled service", tree{"services/a.yaml": web + "access_log: bin\nenabled: false\n"}, nil},
		{"AccessLog the instances' output", main("AccessLog: logs/web.log\n"), []string{"$S/a.yaml:1: name: service web: its instances' output goes to $D/logs/web.log, which AccessLog in $MAIN names as an access log too; rename the service or move that access log"}},
		{"access_log the instances' output", tree{"services/a.yaml": web + "access_log: logs/web.log\n"}, []string{"$S/a.yaml:1: name: service web: its instances' output goes to $D/logs/web.log, which access_log in $S/a.yaml names as an access log too; rename the service or move that access log"}},
		{"access_log a list", tree{"services/a.yaml": web + "access_log: [a]\n"}, []string{"$S/a.yaml:6: access_log: want a path or off, got a list"}},
		{"the instances' output a folder", tree{"services/a.yaml": web, "logs/web.log/keep": ""},
			[]string{"$S/a.yaml:1: name: service web: its instances' output goes to $D/logs/web.log, which is a folder, not a file"}},
		{"AdminAddr without a port", main("AdminAddr: 127.0.0.1\n"),
			[]string{`$MAIN:2: AdminAddr: want host:port, such as 127.0.0.1:9180, got "127.0.0.1"`}},
		{"AdminAddr port out of range", main("AdminAddr: 127.0.0.1:70000\n"),
			[]string{`$MAIN:2: AdminAddr: want a port 1..65535 after the host, got "70000" in "127.0.0.1:70000"`}},
		{"AdminAddr port a name", main("AdminAddr: 127.0.0.1:http\n"),
			[]string{`$MAIN:2: AdminAddr: want a port 1..65535 after the host, got "http" in "127.0.0.1:http"`}},
		{"AdminAddr host a name", main("AdminAddr: admin.example:9180\n"),
			[]string{`$MAIN:2: AdminAddr: want an IP address or localhost as the host, such as 127.0.0.1:9180, got "admin.example"`}},
		{"AdminAddr loopback forms", main("AdminAddr: '[::1]:9180'\n"), nil},
		{"AdminAddr localhost", main("AdminAddr: localhost:9180\n"), nil},
		{"AdminAddr every interface", main("AdminAddr: 0.0.0.0:9180\n"), []string{reachable("0.0.0.0:9180")}},
		{"AdminAddr no host", main("AdminAddr: ':9180'\n"), []string{reachable(":9180")}},
		{"AdminAddr a LAN address", main("AdminAddr: 192.168.1.5:9180\n"), []string{reachable("192.168.1.5:9180")}},
		{"AdminAddr with an empty AdminAuth", main("AdminAddr: 0.0.0.0:9180\nAdminAuth: []\n"), []string{reachable("0.0.0.0:9180")}},
		{"AdminAddr with AdminAuth", main("AdminAddr: 0.0.0.0:9180\n" + auth), nil},
		{"AdminAuth broken: reported once, at its entry", main("AdminAddr: 0.0.0.0:9180\nAdminAuth:\n  - alice\n"),
			[]string{"$MAIN:4: AdminAuth: want user:bcrypt-hash, got an entry with no ':'"}},
		{"AdminAuth empty user", main("AdminAuth: [':" + hash + "']\n"),
			[]string{"$MAIN:2: AdminAuth: want user:bcrypt-hash, got an empty user name"}},
		{"AdminAuth user with a space", main("AdminAuth: ['al ice:" + hash + "']\n"),
			[]string{`$MAIN:2: AdminAuth: user "al ice": a user name has no spaces or control characters`}},
		{"AdminAuth not a hash", main("AdminAuth:\n  - alice:secret\n"),
			[]string{`$MAIN:3: AdminAuth: user "alice": not a bcrypt hash (crypto/bcrypt: hashedSecret too short to be a bcrypted password); smoothtool hash-password makes one`}},
		{"AdminAuth a mapping", main("AdminAuth:\n  - alice: " + hash + "\n"),
			[]string{"$MAIN:3: AdminAuth: want user:bcrypt-hash as one string, got a mapping (no space after the ':')"}},
		{"AdminAuth a string", main("AdminAuth: alice\n"),
			[]string{`$MAIN:2: AdminAuth: want a list of user:bcrypt-hash entries, got "alice"`}},
		{"AdminAuth twice", main("AdminAuth:\n  - alice:" + hash + "\n  - alice:" + hash + "\n"),
			[]string{`$MAIN:4: AdminAuth: user "alice" is listed twice (first at line 3)`}},
		{"AdminAddr on ProxyPort", main("AdminAddr: 127.0.0.1:8085\n"),
			[]string{"$MAIN:2: AdminAddr: port 8085 is also ProxyPort ($MAIN:1); the admin listener needs a port of its own"}},
		{"AdminAddr on ProxyPort, other address", main("AdminAddr: 127.0.0.2:8085\n"), nil},
		{"AdminAddr on every interface, ProxyPort", main("AdminAddr: 0.0.0.0:8085\n" + auth),
			[]string{"$MAIN:2: AdminAddr: port 8085 is also ProxyPort ($MAIN:1); the admin listener needs a port of its own"}},
		{"AdminAddr on HTTPSPort", main("HTTPSPort: 8443\nAdminAddr: 127.0.0.1:8443\n"),
			[]string{"$MAIN:3: AdminAddr: port 8443 is also HTTPSPort ($MAIN:2); the admin listener needs a port of its own"}},
		{"AdminAddr on a service's port",
			tree{"smoothserve.yaml": "AdminAddr: 127.0.0.1:8090\n", "services/a.yaml": strings.Replace(web, "8085", "8090", 1)},
			[]string{`$MAIN:1: AdminAddr: port 8090 is also the port of service "web" ($S/a.yaml:2); the admin listener needs a port of its own`}},
		{"AdminAddr in the instance ports", main("AdminAddr: localhost:9003\n"),
			[]string{`$MAIN:2: AdminAddr: port 9003 is also one of the instance ports 9000..9003 of service "web" ($S/a.yaml:3); the admin listener needs a port of its own`}},
		{"health_check_fails 0", tree{"services/a.yaml": web + "health_check: /h\nhealth_check_fails: 0\n"},
			[]string{"$S/a.yaml:7: health_check_fails: must be at least 1, got 0"}},
		{"health_check_fails a string", tree{"services/a.yaml": web + "health_check_fails: three\n"},
			[]string{`$S/a.yaml:6: health_check_fails: want an integer, got "three"`}},
		{"health_check_interval under its floor", tree{"services/a.yaml": web + "health_check: /h\nhealth_check_interval: 0.000001\n"},
			[]string{"$S/a.yaml:7: health_check_interval: must be 0 (checked at start only) or at least 100ms, got 1µs: each check is a connection to every instance"}},
		{"negative health durations", tree{"services/a.yaml": web + "health_check: /h\nhealth_check_interval: -1\nunhealthy_restart_after: -2s\n"},
			[]string{
				"$S/a.yaml:7: health_check_interval: must not be negative, got -1s",
				"$S/a.yaml:8: unhealthy_restart_after: must not be negative, got -2s",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkLoadErrors(t, tt.files, tt.want) })
	}
}

// TestLoadMainAdmin: LoadMain checks AdminAddr and AdminAuth, which need
// no file read, and not AccessLog, which does.
func TestLoadMainAdmin(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\nAdminAddr: 0.0.0.0:9180\nAccessLog: x\n", "x/y": "a folder"}.write(t)
	_, err := LoadMain(filepath.Join(dir, "smoothserve.yaml"))
	checkEqual(t, "errors", errorLines(t, err), []string{
		expand(dir, "$MAIN:2: AdminAddr 0.0.0.0:9180 is reachable from other machines: set AdminAuth"),
	})
}
