package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\n", "services/a.yaml": web, "bin/app": script}.write(t)
	c := mustLoad(t, dir)

	checkEqual(t, "Path", c.Path, filepath.Join(dir, "smoothserve.yaml"))
	checkEqual(t, "Dir", c.Dir, dir)
	checkEqual(t, "ProxyAddr", c.ProxyAddr, "127.0.0.1")
	checkEqual(t, "SubConfigDir", c.SubConfigDir, filepath.Join(dir, "services"))
	checkEqual(t, "LogDir", c.LogDir, filepath.Join(dir, "logs"))
	checkEqual(t, "ControlSocket", c.ControlSocket, filepath.Join(dir, "smoothserve.sock"))
	checkEqual(t, "PidFile", c.PidFile, filepath.Join(dir, "smoothserve.pid"))
	checkEqual(t, "StateDir", c.StateDir, dir)
	checkEqual(t, "TrustedProxies", len(c.TrustedProxies), 0)
	checkEqual(t, "HeaderTimeout", c.HeaderTimeout, 10*time.Second)
	checkEqual(t, "IdleTimeout", c.IdleTimeout, 75*time.Second)
	checkEqual(t, "MaxHeaderBytes", c.MaxHeaderBytes, 32768)
	checkEqual(t, "MaxHeaderFields", c.MaxHeaderFields, 100)
	checkEqual(t, "BodyTimeout", c.BodyTimeout, 60*time.Second)
	checkEqual(t, "UpgradeTimeout", c.UpgradeTimeout, 30*time.Second)
	checkEqual(t, "UpgradeDrainTimeout", c.UpgradeDrainTimeout, 60*time.Second)
	checkEqual(t, "Warnings", len(c.Warnings), 0)

	s := c.Service("web")
	if s == nil {
		t.Fatal(`Service("web") = nil`)
	}
	checkEqual(t, "File", s.File, filepath.Join(dir, "services/a.yaml"))
	checkEqual(t, "ServerNames", len(s.ServerNames), 0)
	checkEqual(t, "ServerIP", s.ServerIP, "127.0.0.1")
	checkEqual(t, "ExecutablePath", s.ExecutablePath, filepath.Join(dir, "bin/app"))
	checkEqual(t, "Args", s.Args, []string{"-port={port}"})
	checkEqual(t, "Env", s.Env, map[string]string{})
	checkEqual(t, "Enabled", s.Enabled, true)
	checkEqual(t, "AutoRestart", s.AutoRestart, false)
	checkEqual(t, "DelayRunningTime", s.DelayRunningTime, time.Duration(0))
	checkEqual(t, "DelayUpdateTime", s.DelayUpdateTime, 2*time.Second)
	checkEqual(t, "StartTimeout", s.StartTimeout, 30*time.Second)
	checkEqual(t, "StopTimeout", s.StopTimeout, 30*time.Second)
	checkEqual(t, "KillTimeout", s.KillTimeout, 10*time.Second)
	checkEqual(t, "ResponseHeaderTimeout", s.ResponseHeaderTimeout, 60*time.Second)
	checkEqual(t, "MaxBodySize", s.MaxBodySize, int64(0))
	checkEqual(t, "WatchIgnore", s.WatchIgnore, []string{"*.swp", "*~", "*.tmp", ".git/"})
	checkEqual(t, "HealthCheck", s.HealthCheck, "")
	checkEqual(t, "RestartStrategy", s.RestartStrategy, StrategySurge)
	checkEqual(t, "Lines", s.Lines, map[string]int{
		"name": 1, "port": 2, "start_instance_port": 3, "instance_count": 4, "executable_path": 5,
	})
}

// TestPaths: a relative config path is made absolute; paths in
// smoothserve.yaml and executable_path resolve against its folder;
// watch_files against the executable's.
func TestPaths(t *testing.T) {
	dir := tree{
		"etc/smoothserve.yaml": "ProxyPort: 8085\nSubConfigDir: svc\nLogDir: ../var/log\nPidFile: /run/ss.pid\nStateDir: state\n",
		"etc/svc/a.yml":        strings.Replace(web, "bin/app", "../app/bin/server", 1) + "watch_files: [../views, static, /abs/elsewhere, server]\n",
		"app/bin/server":       script,
		"app/views/index.html": "<p>",
	}.write(t)
	t.Chdir(dir)
	c, err := Load("etc/smoothserve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(dir, "etc")
	checkEqual(t, "Path", c.Path, filepath.Join(etc, "smoothserve.yaml"))
	checkEqual(t, "SubConfigDir", c.SubConfigDir, filepath.Join(etc, "svc"))
	checkEqual(t, "LogDir", c.LogDir, filepath.Join(dir, "var/log"))
	checkEqual(t, "PidFile", c.PidFile, "/run/ss.pid")
	checkEqual(t, "StateDir", c.StateDir, filepath.Join(etc, "state"))
	s := c.Services[0]
	checkEqual(t, "ExecutablePath", s.ExecutablePath, filepath.Join(dir, "app/bin/server"))
	checkEqual(t, "WatchFiles", s.WatchFiles, []string{
		filepath.Join(dir, "app/views"),
		filepath.Join(dir, "app/bin/static"),
		"/abs/elsewhere",
		filepath.Join(dir, "app/bin/server"),
	})
	file := filepath.Join(etc, "svc/a.yml")
	checkEqual(t, "Warnings", c.Warnings, []string{
		file + ":6: watch_files: " + filepath.Join(dir, "app/bin/static") + " does not exist",
		file + ":6: watch_files: /abs/elsewhere does not exist",
	})
}

func TestDurationForms(t *testing.T) {
	tests := []struct {
		text string
		want time.Duration
		err  string // the message after "delay_running_time: ", if an error
	}{
		{"3", 3 * time.Second, ""},
		{"1.5", 1500 * time.Millisecond, ""},
		{"0", 0, ""},
		{`"1.5s"`, 1500 * time.Millisecond, ""},
		{"300ms", 300 * time.Millisecond, ""},
		{"1m30s", 90 * time.Second, ""},
		{"-2", 0, "must not be negative, got -2s"},
		{"-1s", 0, "must not be negative, got -1s"},
		{`"3"`, 0, `want a number of seconds or a duration like "1.5s", got "3"`},
		{"three", 0, `want a number of seconds or a duration like "1.5s", got "three"`},
		{"[1]", 0, `want a number of seconds or a duration like "1.5s", got a list`},
		{"true", 0, `want a number of seconds or a duration like "1.5s", got "true"`},
		{".inf", 0, "duration .inf is out of range"},
		{"1e12", 0, "duration 1e12 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := loadOne(t, "delay_running_time: "+tt.text+"\n")
			if tt.err != "" {
				checkEqual(t, "errors", errorLines(t, err), []string{"$S/a.yaml:6: delay_running_time: " + tt.err})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkEqual(t, "DelayRunningTime", got.DelayRunningTime, tt.want)
		})
	}
}

func TestSizeForms(t *testing.T) {
	tests := []struct {
		text string
		want int64
		err  string // the message after "max_body_size: ", if an error
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"0x400", 1024, ""},
		{"512k", 512 << 10, ""},
		{"512K", 512 << 10, ""},
		{"10m", 10 << 20, ""},
		{`"10m"`, 10 << 20, ""},
		{"10MB", 10 << 20, ""},
		{"10MiB", 10 << 20, ""},
		{"10mib", 10 << 20, ""},
		{"1g", 1 << 30, ""},
		{"1GB", 1 << 30, ""},
		{"2GiB", 2 << 30, ""},
		{"0m", 0, ""},
		{"-1", 0, "must not be negative (0 is no limit), got -1 bytes"},
		{"-1k", 0, "must not be negative (0 is no limit), got -1024 bytes"},
		{`"1024"`, 0, `want a number of bytes or a size like "10m", got "1024"`},
		{"10 MB", 0, `want a number of bytes or a size like "10m", got "10 MB"`},
		{"1.5m", 0, `want a number of bytes or a size like "10m", got "1.5m"`},
		{"1.5", 0, `want a number of bytes or a size like "10m", got "1.5"`},
		{"10t", 0, `want a number of bytes or a size like "10m", got "10t"`},
		{"10b", 0, `want a number of bytes or a size like "10m", got "10b"`},
		{"m", 0, `want a number of bytes or a size like "10m", got "m"`},
		{"1m2k", 0, `want a number of bytes or a size like "10m", got "1m2k"`},
		{"true", 0, `want a number of bytes or a size like "10m", got "true"`},
		{"[1m]", 0, `want a number of bytes or a size like "10m", got a list`},
		{"{a: 1}", 0, `want a number of bytes or a size like "10m", got a mapping`},
		{"9223372036854775808", 0, "size 9223372036854775808 is out of range"},
		{"8589934592g", 0, "size 8589934592g is out of range"},
		{"99999999999999999999k", 0, "size 99999999999999999999k is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := loadOne(t, "max_body_size: "+tt.text+"\n")
			if tt.err != "" {
				checkEqual(t, "errors", errorLines(t, err), []string{"$S/a.yaml:6: max_body_size: " + tt.err})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkEqual(t, "MaxBodySize", got.MaxBodySize, tt.want)
		})
	}
}

func TestValueForms(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		check func(t *testing.T, s *Service)
	}{
		{"server_name with spaces and case", "server_name: ' A.com ,b.COM,*.c.com'\n", func(t *testing.T, s *Service) {
			checkEqual(t, "ServerNames", s.ServerNames, []string{"a.com", "b.com", "*.c.com"})
		}},
		{"server_name as a list", "server_name:\n  - A.com\n  - b.com\n", func(t *testing.T, s *Service) {
			checkEqual(t, "ServerNames", s.ServerNames, []string{"a.com", "b.com"})
		}},
		{"empty server_name is the default service", "server_name: ''\n", func(t *testing.T, s *Service) {
			checkEqual(t, "ServerNames", len(s.ServerNames), 0)
		}},
		{"env values as text", "env:\n  PORT: 80\n  DEBUG: true\n  EMPTY:\n  NAME: web\n", func(t *testing.T, s *Service) {
			checkEqual(t, "Env", s.Env, map[string]string{"PORT": "80", "DEBUG": "true", "EMPTY": "", "NAME": "web"})
		}},
		{"empty args list means no args", "args: []\n", func(t *testing.T, s *Service) {
			checkEqual(t, "Args", s.Args, []string{})
		}},
		{"null value is the default", "args:\nenabled:\n", func(t *testing.T, s *Service) {
			checkEqual(t, "Args", s.Args, []string{"-port={port}"})
			checkEqual(t, "Enabled", s.Enabled, true)
		}},
		{"in_place", "restart_strategy: in_place\nhealth_check: /healthz\n", func(t *testing.T, s *Service) {
			checkEqual(t, "RestartStrategy", s.RestartStrategy, StrategyInPlace)
			checkEqual(t, "HealthCheck", s.HealthCheck, "/healthz")
		}},
		{"anchors and aliases", "server_ip: &ip 127.0.0.2\nenv:\n  IP: *ip\n", func(t *testing.T, s *Service) {
			checkEqual(t, "ServerIP", s.ServerIP, "127.0.0.2")
			checkEqual(t, "Env", s.Env, map[string]string{"IP": "127.0.0.2"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := loadOne(t, tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestServerNameErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"'a.com, ,b.com'", `empty host name in "a.com, ,b.com"`},
		{"'a.com,'", `empty host name in "a.com,"`},
		{"'*'", `"*": '*' is allowed only as the whole first label, as in *.example.com`},
		{"'a.*.com'", `"a.*.com": '*' is allowed only as the whole first label, as in *.example.com`},
		{"'a.com b.com'", `"a.com b.com": not a host name: use letters, digits, '-', '_' and '.', and commas between names`},
		{"'a..com'", `"a..com": not a host name: it has an empty label`},
		{"'a.com, A.com'", `"a.com" is listed twice`},
		{"{a: b}", "want host names separated by commas, or a list, got a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			_, err := loadOne(t, "server_name: "+tt.text+"\n")
			checkEqual(t, "errors", errorLines(t, err), []string{"$S/a.yaml:6: server_name: " + tt.want})
		})
	}
}

// loadOne loads web plus extra lines as services/a.yaml, returning the
// service, or the error with paths replaced by $S.
func loadOne(t *testing.T, extra string) (*Service, error) {
	t.Helper()
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\n", "services/a.yaml": web + extra, "bin/app": script}.write(t)
	c, err := Load(filepath.Join(dir, "smoothserve.yaml"))
	if err != nil {
		var list ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				e.File = strings.Replace(e.File, filepath.Join(dir, "services"), "$S", 1)
			}
		}
		return nil, err
	}
	return c.Services[0], nil
}

func TestMainFile(t *testing.T) {
	dir := tree{
		"smoothserve.yaml": "ProxyPort: 8085\nTrustedProxies: [10.1.2.3/8, 192.168.0.7, '::1']\nHeaderTimeout: 5\nIdleTimeout: 2m\nMaxHeaderBytes: 1024\n" +
			"MaxHeaderFields: 10000\nBodyTimeout: 2.5\n",
		"services/a.yaml": web,
		"bin/app":         script,
	}.write(t)
	c := mustLoad(t, dir)
	checkEqual(t, "TrustedProxies", c.TrustedProxies, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.7/32"), netip.MustParsePrefix("::1/128"),
	})
	checkEqual(t, "HeaderTimeout", c.HeaderTimeout, 5*time.Second)
	checkEqual(t, "IdleTimeout", c.IdleTimeout, 2*time.Minute)
	checkEqual(t, "MaxHeaderBytes", c.MaxHeaderBytes, 1024)
	checkEqual(t, "MaxHeaderFields", c.MaxHeaderFields, 10000)
	checkEqual(t, "BodyTimeout", c.BodyTimeout, 2500*time.Millisecond)
	checkEqual(t, "Lines", c.Lines, map[string]int{"ProxyPort": 1, "TrustedProxies": 2, "HeaderTimeout": 3, "IdleTimeout": 4, "MaxHeaderBytes": 5,
		"MaxHeaderFields": 6, "BodyTimeout": 7})
}

func TestEmptyServiceFolder(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\n", "services/README.md": "no services yet"}.write(t)
	c := mustLoad(t, dir)
	checkEqual(t, "Services", len(c.Services), 0)
	checkEqual(t, "ProxyPorts", c.ProxyPorts(), []int{8085})
	checkEqual(t, "Warnings", c.Warnings, []string{
		filepath.Join(dir, "smoothserve.yaml") + ": SubConfigDir: " + filepath.Join(dir, "services") +
			" holds no *.yaml or *.yml service files: there is nothing to serve",
	})
}

func TestMissingMainFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "nope.yaml"))
	checkEqual(t, "errors", errorLines(t, err), []string{filepath.Join(dir, "nope.yaml") + ": no such file"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false for %v", err)
	}
}
