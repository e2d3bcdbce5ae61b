package config

import (
	"path/filepath"
	"time"
)

// Every default lives in this file. It is applied in two steps only because
// where the service files are (SubConfigDir) is itself a default: the main
// file's defaults come before the services are read, theirs after.
//
// A key that was absent or null gets its default; a key whose value was
// rejected gets it too, harmlessly, since Load fails anyway.

const (
	defaultProxyAddr      = "127.0.0.1"
	defaultMaxHeaderBytes = 32 << 10
	// As Apache's LimitRequestFields: real requests carry a few dozen.
	defaultMaxHeaderFields = 100
	defaultServerIP        = "127.0.0.1"
)

var (
	defaultArgs        = []string{"-port={port}"}
	defaultWatchIgnore = []string{"*.swp", "*~", "*.tmp", ".git/"}
)

// defaultMain fills smoothserve.yaml's defaults and makes its paths
// absolute, relative ones resolving against its folder.
func (l *loader) defaultMain() {
	c, k := l.cfg, l.main
	setString := func(key string, p *string, def string) {
		if !k.set[key] {
			*p = def
		}
	}
	setDuration := func(key string, p *time.Duration, def time.Duration) {
		if !k.set[key] {
			*p = def
		}
	}
	setString("ProxyAddr", &c.ProxyAddr, defaultProxyAddr)
	setString("SubConfigDir", &c.SubConfigDir, "services")
	setString("LogDir", &c.LogDir, "logs")
	setString("ControlSocket", &c.ControlSocket, "smoothserve.sock")
	setString("PidFile", &c.PidFile, "smoothserve.pid")
	setString("StateDir", &c.StateDir, ".")
	for _, p := range []*string{&c.SubConfigDir, &c.LogDir, &c.ControlSocket, &c.PidFile, &c.StateDir} {
		*p = absolute(c.Dir, *p)
	}
	setString("ACMEDirectory", &c.ACMEDirectory, DefaultACMEDirectory)
	if k.set["ACMECARoot"] {
		c.ACMECARoot = absolute(c.Dir, c.ACMECARoot)
	}
	// Beside smoothserve.state, as what the daemon keeps between runs; a
	// CertDir written relative resolves against Dir, as every path does.
	setString("CertDir", &c.CertDir, filepath.Join(c.StateDir, "certs"))
	c.CertDir = absolute(c.Dir, c.CertDir)
	setDuration("HeaderTimeout", &c.HeaderTimeout, 10*time.Second)
	setDuration("IdleTimeout", &c.IdleTimeout, 75*time.Second)
	setDuration("UpgradeTimeout", &c.UpgradeTimeout, 30*time.Second)
	setDuration("UpgradeDrainTimeout", &c.UpgradeDrainTimeout, 60*time.Second)
	setDuration("BodyTimeout", &c.BodyTimeout, 60*time.Second) // as nginx's client_body_timeout
	// An outer load balancer checking every 2 s, out after 2 fails, has
	// stopped sending new connections by then.
	setDuration("DrainDelay", &c.DrainDelay, 5*time.Second)
	if !k.set["MaxHeaderBytes"] {
		c.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if !k.set["MaxHeaderFields"] {
		c.MaxHeaderFields = defaultMaxHeaderFields
	}
	// Beside the services' logs; "off" is stored as "", no access log.
	switch {
	case !k.set["AccessLog"]:
		c.AccessLog = filepath.Join(c.LogDir, "access.log")
	case c.AccessLog == AccessLogOff:
		c.AccessLog = ""
	default:
		c.AccessLog = absolute(c.Dir, c.AccessLog)
	}
	setString("AccessLogFormat", &c.AccessLogFormat, AccessLogCombined)
}

// defaultService fills a service file's defaults. executable_path and
// working_dir resolve against smoothserve.yaml's folder, watch_files against
// the executable's.
func (l *loader) defaultService(s *Service) {
	c, k := l.cfg, l.svc[s]
	setDuration := func(key string, p *time.Duration, def time.Duration) {
		if !k.set[key] {
			*p = def
		}
	}
	if !k.set["server_ip"] {
		s.ServerIP = defaultServerIP
	}
	if !k.set["port"] {
		s.Port = c.ProxyPort
		if !l.main.usable("ProxyPort") {
			k.invalid["port"] = true // smoothserve.yaml's ProxyPort is reported already
		}
	}
	if !k.set["args"] {
		s.Args = append([]string(nil), defaultArgs...)
	}
	if !k.set["env"] {
		s.Env = map[string]string{}
	}
	if !k.set["enabled"] {
		s.Enabled = true
	}
	setDuration("delay_update_time", &s.DelayUpdateTime, 2*time.Second)
	setDuration("start_timeout", &s.StartTimeout, 30*time.Second)
	setDuration("stop_timeout", &s.StopTimeout, 30*time.Second)
	setDuration("kill_timeout", &s.KillTimeout, 10*time.Second)
	setDuration("response_header_timeout", &s.ResponseHeaderTimeout, 60*time.Second)
	setDuration("health_check_interval", &s.HealthCheckInterval, 10*time.Second)
	setDuration("unhealthy_restart_after", &s.UnhealthyRestartAfter, 60*time.Second)
	if !k.set["health_check_fails"] {
		s.HealthCheckFails = 3
	}
	// max_body_size stays 0, no limit, unlike nginx's 1m: the services
	// behind set their own limits, and a low default would break their
	// uploads with nothing in their logs to say why.
	if !k.set["watch_ignore"] {
		s.WatchIgnore = append([]string(nil), defaultWatchIgnore...)
	}
	if !k.set["restart_strategy"] {
		s.RestartStrategy = StrategySurge
	}
	if !k.set["tls"] {
		s.TLS = TLSOff
	}
	if !k.set["https_redirect"] {
		s.HTTPSRedirect = s.TLS != TLSOff
	}
	// tls_cert, tls_key and access_log resolve against smoothserve.yaml's
	// folder, as executable_path and every other path do; access_log: off
	// stays "off", which the daemon tells apart from unset ("").
	for _, p := range []*string{&s.TLSCert, &s.TLSKey} {
		if *p != "" {
			*p = absolute(c.Dir, *p)
		}
	}
	if s.AccessLog != "" && s.AccessLog != AccessLogOff {
		s.AccessLog = absolute(c.Dir, s.AccessLog)
	}
	base := c.Dir
	if k.set["executable_path"] {
		s.ExecutablePath = absolute(c.Dir, s.ExecutablePath)
		base = filepath.Dir(s.ExecutablePath)
	}
	// working_dir resolves against smoothserve.yaml's folder, as
	// executable_path does, not against the executable's: an interpreter
	// (/usr/bin/node) runs a script of the application's folder.
	if k.set["working_dir"] {
		s.WorkingDir = absolute(c.Dir, s.WorkingDir)
	} else if k.set["executable_path"] {
		s.WorkingDir = base
	}
	for i, w := range s.WatchFiles {
		s.WatchFiles[i] = absolute(base, w)
	}
}

// absolute resolves p against dir unless it is absolute already.
func absolute(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}
