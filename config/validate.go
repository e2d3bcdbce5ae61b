package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Every rule lives in this file, validate_cross.go, validate_tls.go (with
// certs.go, which reads certificate files) and validate_admin.go. They run
// after defaults, so they check what smoothserve will use, and skip a key
// whose value was already rejected while decoding.

const (
	maxInstances    = 64
	minHeader       = 1024
	maxHeaderFields = 10000 // more is a typo: no client sends so many
	// A unix socket path must fit sockaddr_un.sun_path: 108 bytes on Linux,
	// counting the final NUL; a longer one fails only when the daemon starts.
	maxSocketPath = 107
)

var serviceName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// validate checks every rule and records every problem in l.errs.
func (l *loader) validate() {
	l.goodPort = map[*Service]bool{}
	l.goodRange = map[*Service]bool{}
	l.validateMain()
	l.checkMainFiles()
	for _, s := range l.cfg.Services {
		l.validateService(s)
	}
	l.checkNames()
	l.checkHosts()
	l.checkHTTPSPort()
	l.checkPortRanges()
	l.checkAccessLogs()
	l.checkAdminPort()
}

func (l *loader) validateMain() {
	c, k := l.cfg, l.main
	if k.usable("ProxyAddr") {
		if _, err := netip.ParseAddr(c.ProxyAddr); err != nil {
			l.add(k.errorf("ProxyAddr", "want an IP address, got %q", c.ProxyAddr))
		}
	}
	if k.usable("ProxyPort") && c.ProxyPort != 0 { // 0: unset, each service sets port
		l.checkPort(k, "ProxyPort", c.ProxyPort)
	}
	if k.set["CommandPort"] && c.CommandPort != 0 && l.checkPort(k, "CommandPort", c.CommandPort) {
		l.warn(&Error{File: c.Path, Line: c.Lines["CommandPort"], Msg: fmt.Sprintf(
			"CommandPort %d is accepted for compatibility but opens no TCP port; smoothtool uses ControlSocket (%s)",
			c.CommandPort, c.ControlSocket)})
	}
	if k.usable("ControlSocket") && len(c.ControlSocket) > maxSocketPath {
		l.add(k.errorf("ControlSocket", "%s is %d bytes long; a unix socket path may have at most %d",
			c.ControlSocket, len(c.ControlSocket), maxSocketPath))
	}
	if k.usable("MaxHeaderBytes") && c.MaxHeaderBytes < minHeader {
		l.add(k.errorf("MaxHeaderBytes", "must be at least %d, got %d", minHeader, c.MaxHeaderBytes))
	}
	if k.usable("MaxHeaderFields") && (c.MaxHeaderFields < 1 || c.MaxHeaderFields > maxHeaderFields) {
		l.add(k.errorf("MaxHeaderFields", "must be 1..%d, got %d", maxHeaderFields, c.MaxHeaderFields))
	}
	l.checkDuration(k, "HeaderTimeout", c.HeaderTimeout, true)
	l.checkDuration(k, "BodyTimeout", c.BodyTimeout, true)
	l.checkDuration(k, "IdleTimeout", c.IdleTimeout, true)
	l.checkDuration(k, "UpgradeTimeout", c.UpgradeTimeout, true)
	l.checkDuration(k, "UpgradeDrainTimeout", c.UpgradeDrainTimeout, false)
	l.checkDuration(k, "DrainDelay", c.DrainDelay, false)
	if k.usable("AgentPort") && k.set["AgentPort"] {
		l.checkPort(k, "AgentPort", c.AgentPort)
	}
	l.validateMainTLS()
	l.validateMainAdmin()
}

func (l *loader) validateService(s *Service) {
	k := l.svc[s]
	present := func(key string) bool {
		if !k.usable(key) {
			return false
		}
		if !k.set[key] {
			l.add(k.errorf(key, "required"))
			return false
		}
		return true
	}

	if present("name") && !serviceName.MatchString(s.Name) {
		l.add(k.errorf("name", "want letters, digits, '_', '.' and '-' only, got %q", s.Name))
	}
	if k.usable("server_name") {
		l.checkServerNames(s, k)
	}
	if k.usable("server_ip") {
		if _, err := netip.ParseAddr(s.ServerIP); err != nil {
			l.add(k.errorf("server_ip", "want an IP address, got %q", s.ServerIP))
		}
	}
	l.checkServicePorts(s, k, present)
	l.checkServicePaths(s, k, present)
	l.checkDuration(k, "delay_running_time", s.DelayRunningTime, false)
	l.checkDuration(k, "delay_update_time", s.DelayUpdateTime, false)
	l.checkDuration(k, "start_timeout", s.StartTimeout, true)
	l.checkDuration(k, "stop_timeout", s.StopTimeout, true)
	l.checkDuration(k, "kill_timeout", s.KillTimeout, true)
	l.checkDuration(k, "response_header_timeout", s.ResponseHeaderTimeout, false)
	if k.usable("max_body_size") && s.MaxBodySize < 0 {
		l.add(k.errorf("max_body_size", "must not be negative (0 is no limit), got %d bytes", s.MaxBodySize))
	}
	if k.usable("health_check") && s.HealthCheck != "" &&
		(!strings.HasPrefix(s.HealthCheck, "/") || strings.ContainsFunc(s.HealthCheck, badPathRune)) {
		l.add(k.errorf("health_check", "want a path starting with /, such as /healthz, got %q", s.HealthCheck))
	}
	if k.usable("restart_strategy") && s.RestartStrategy != StrategySurge && s.RestartStrategy != StrategyInPlace {
		l.add(k.errorf("restart_strategy", "want %q or %q, got %q", StrategySurge, StrategyInPlace, s.RestartStrategy))
	}
	l.checkHealthKeys(s, k)
	l.checkServiceTLS(s, k)
}

// minHealthCheckInterval is the shortest health_check_interval: below it
// the checks, a connection to every instance each, are a load of their
// own (a microsecond's interval held a core).
const minHealthCheckInterval = 100 * time.Millisecond

// checkHealthKeys checks the keys of the health checks after start. They
// are allowed without health_check, which they need to do anything: that
// is a warning, so that a file can carry them while its check is off.
func (l *loader) checkHealthKeys(s *Service, k *fileKeys) {
	l.checkDuration(k, "health_check_interval", s.HealthCheckInterval, false)
	if k.usable("health_check_interval") && s.HealthCheckInterval > 0 && s.HealthCheckInterval < minHealthCheckInterval {
		l.add(k.errorf("health_check_interval", "must be 0 (checked at start only) or at least %s, got %s: each check is a connection to every instance",
			minHealthCheckInterval, s.HealthCheckInterval))
	}
	l.checkDuration(k, "unhealthy_restart_after", s.UnhealthyRestartAfter, false)
	if k.usable("health_check_fails") && s.HealthCheckFails < 1 {
		l.add(k.errorf("health_check_fails", "must be at least 1, got %d", s.HealthCheckFails))
	}
	if s.HealthCheck != "" || !k.usable("health_check") {
		return
	}
	for _, key := range []string{"health_check_interval", "health_check_fails", "unhealthy_restart_after"} {
		if k.set[key] {
			l.warn(k.errorf(key, "has no effect without health_check: instances are checked after start only with an HTTP health check"))
		}
	}
}

// checkServicePorts checks the proxy port and the instances' range.
func (l *loader) checkServicePorts(s *Service, k *fileKeys, present func(string) bool) {
	if k.usable("port") {
		if !k.set["port"] && s.Port == 0 {
			l.add(k.errorf("port", "required: smoothserve.yaml sets no ProxyPort"))
		} else {
			l.goodPort[s] = l.checkPort(k, "port", s.Port)
		}
	}
	startOK := present("start_instance_port") && l.checkPort(k, "start_instance_port", s.StartInstancePort)
	countOK := present("instance_count")
	if countOK && (s.InstanceCount < 1 || s.InstanceCount > maxInstances) {
		l.add(k.errorf("instance_count", "must be 1..%d, got %d", maxInstances, s.InstanceCount))
		countOK = false
	}
	if startOK && countOK {
		first, last := s.reservedPorts()
		if last > 65535 {
			l.add(k.errorf("start_instance_port", "%d instances reserve ports %d..%d (two per instance, for rollouts), past 65535",
				s.InstanceCount, first, last))
		} else {
			l.goodRange[s] = true
		}
	}
}

// checkServicePaths checks the executable, the working folder and what
// auto_restart watches.
func (l *loader) checkServicePaths(s *Service, k *fileKeys, present func(string) bool) {
	// A disabled service is not started, so its executable may be missing
	// (not built yet, or being replaced); everything else is still checked.
	if present("executable_path") && s.Enabled {
		if msg := executableProblem(s.ExecutablePath); msg != "" {
			l.add(k.errorf("executable_path", "%s: %s", s.ExecutablePath, msg))
		}
	}
	// Unset, it is the executable's folder, there if the executable is; as
	// the executable, it may be missing while the service is disabled.
	if k.set["working_dir"] && s.Enabled {
		if msg := folderProblem(s.WorkingDir); msg != "" {
			l.add(k.errorf("working_dir", "%s: %s", s.WorkingDir, msg))
		}
	}
	if s.Enabled && k.usable("watch_files") {
		for _, w := range s.WatchFiles {
			if _, err := os.Stat(w); errors.Is(err, fs.ErrNotExist) {
				l.warn(&Error{File: s.File, Line: s.Lines["watch_files"], Key: "watch_files", Msg: w + " does not exist"})
			}
		}
	}
	if k.usable("watch_ignore") {
		for _, g := range s.WatchIgnore {
			if _, err := filepath.Match(g, ""); err != nil {
				l.add(k.errorf("watch_ignore", "%q is not a valid glob", g))
			}
		}
	}
}

// checkServerNames checks each name: letters, digits, '-', '_' and '.', with
// '*' allowed only as the whole first label of a wildcard (*.example.com).
func (l *loader) checkServerNames(s *Service, k *fileKeys) {
	seen := map[string]bool{}
	for _, name := range s.ServerNames {
		if msg := hostProblem(name); msg != "" {
			l.add(k.errorf("server_name", "%q: %s", name, msg))
		} else if seen[name] {
			l.add(k.errorf("server_name", "%q is listed twice", name))
		}
		seen[name] = true
	}
}

func hostProblem(name string) string {
	rest := strings.TrimPrefix(name, "*.")
	if strings.Contains(rest, "*") || rest == "" {
		return "'*' is allowed only as the whole first label, as in *.example.com"
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return "not a host name: use letters, digits, '-', '_' and '.', and commas between names"
		}
	}
	if strings.HasPrefix(rest, ".") || strings.HasSuffix(rest, ".") || strings.Contains(rest, "..") {
		return "not a host name: it has an empty label"
	}
	return ""
}

func badPathRune(r rune) bool { return r <= ' ' || r == 0x7f }

// executableProblem is what stops path from being run, or "".
func executableProblem(path string) string {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case err != nil:
		return cause(err)
	case info.IsDir():
		return "is a folder, not a file"
	case !info.Mode().IsRegular():
		return "not a regular file"
	case info.Mode().Perm()&0o111 == 0:
		return "not executable"
	}
	return ""
}

// folderProblem is what stops path from being a process's working
// directory, or "".
func folderProblem(path string) string {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such folder"
	case err != nil:
		return cause(err)
	case !info.IsDir():
		return "is a file, not a folder"
	}
	return ""
}

// checkPort reports whether port is a TCP port number, recording an error
// if not.
func (l *loader) checkPort(k *fileKeys, key string, port int) bool {
	if port < 1 || port > 65535 {
		l.add(k.errorf(key, "must be 1..65535, got %d", port))
		return false
	}
	return true
}

// checkDuration rejects a negative d, and a zero one when positive is set:
// a zero timeout means "no limit" to some readers and "fail at once" to
// others, and neither is what an operator who wrote 0 meant.
func (l *loader) checkDuration(k *fileKeys, key string, d time.Duration, positive bool) {
	switch {
	case !k.usable(key):
	case d < 0:
		l.add(k.errorf(key, "must not be negative, got %s", d))
	case d == 0 && positive:
		l.add(k.errorf(key, "must be more than 0"))
	}
}
