package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// The access log and admin keys: smoothserve.yaml's AccessLog,
// AccessLogFormat, AdminAddr and AdminAuth, and a service's access_log.
// Their decoders live here too, as AdminAuth's entries are checked one by
// one where they are written.

// logPath accepts a path, or off (in any case, stored as AccessLogOff); a
// YAML boolean (false) is refused rather than taken for a file called
// "false".
func logPath(p *string) decodeFunc {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode || n.Value == "" || n.ShortTag() == "!!bool" {
			return wrongType(n, "a path or off")
		}
		*p = n.Value
		if strings.EqualFold(n.Value, AccessLogOff) {
			*p = AccessLogOff
		}
		return nil
	}
}

// adminUsers accepts a list of "user:bcrypt-hash" strings. Each entry is
// checked here, so that an error names its line; the hash itself is never
// quoted in an error.
func adminUsers(p *[]AdminUser) decodeFunc {
	const want = "a list of user:bcrypt-hash entries"
	return func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return wrongType(n, want)
		}
		users := make([]AdminUser, 0, len(n.Content))
		first := map[string]int{} // line of each user
		for _, item := range n.Content {
			item = resolve(item)
			switch {
			case item.Kind == yaml.MappingNode:
				return &valueError{line: item.Line, msg: "want user:bcrypt-hash as one string, got a mapping (no space after the ':')"}
			case item.Kind != yaml.ScalarNode || isNull(item):
				return wrongType(item, "user:bcrypt-hash")
			}
			u, msg := parseAdminUser(item.Value)
			if msg != "" {
				return &valueError{line: item.Line, msg: msg}
			}
			if line, dup := first[u.User]; dup {
				return &valueError{line: item.Line, msg: fmt.Sprintf("user %q is listed twice (first at line %d)", u.User, line)}
			}
			first[u.User] = item.Line
			users = append(users, u)
		}
		*p = users
		return nil
	}
}

// parseAdminUser splits "user:hash" at its first ':' and checks both
// parts; msg says what is wrong, "" when nothing is.
func parseAdminUser(s string) (u AdminUser, msg string) {
	user, hash, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return u, "want user:bcrypt-hash, got an entry with no ':'"
	case user == "":
		return u, "want user:bcrypt-hash, got an empty user name"
	case strings.ContainsFunc(user, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return u, fmt.Sprintf("user %q: a user name has no spaces or control characters", user)
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return u, fmt.Sprintf("user %q: not a bcrypt hash (%v); smoothtool hash-password makes one", user, err)
	}
	return AdminUser{User: user, Hash: hash}, ""
}

// adminListener is AdminAddr, parsed by validateMainAdmin.
type adminListener struct {
	ok   bool
	addr netip.Addr // the zero Addr: every interface (no host, 0.0.0.0 or ::)
	port int
}

// validateMainAdmin checks smoothserve.yaml's access log and admin keys
// that need no file read, so LoadMain checks them too.
func (l *loader) validateMainAdmin() {
	c, k := l.cfg, l.main
	if k.usable("AccessLogFormat") && c.AccessLogFormat != AccessLogCombined && c.AccessLogFormat != AccessLogJSON {
		l.add(k.errorf("AccessLogFormat", "want %q or %q, got %q", AccessLogCombined, AccessLogJSON, c.AccessLogFormat))
	}
	if k.set["AdminAuth"] && !k.set["AdminAddr"] {
		l.warn(k.errorf("AdminAuth", "set, but AdminAddr is not: there is no admin listener to guard"))
	}
	if !k.usable("AdminAddr") || c.AdminAddr == "" {
		return
	}
	a, msg := parseAdminAddr(c.AdminAddr)
	if msg != "" {
		l.add(k.errorf("AdminAddr", "%s", msg))
		return
	}
	l.admin = a
	if !a.addr.IsLoopback() && k.usable("AdminAuth") && len(c.AdminAuth) == 0 {
		// The key opens the message: it reads as the sentence it is.
		l.add(&Error{File: k.file, Line: k.at("AdminAddr"),
			Msg: fmt.Sprintf("AdminAddr %s is reachable from other machines: set AdminAuth", c.AdminAddr)})
	}
}

// parseAdminAddr reads host:port, the host an IP address, localhost, or
// empty (every interface); msg says what is wrong, "" when nothing is.
func parseAdminAddr(s string) (a adminListener, msg string) {
	const example = "127.0.0.1:9180"
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return a, fmt.Sprintf("want host:port, such as %s, got %q", example, s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return a, fmt.Sprintf("want a port 1..65535 after the host, got %q in %q", port, s)
	}
	a.port = n
	switch host {
	case "":
	case "localhost":
		a.addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		addr, err := netip.ParseAddr(host)
		if err != nil {
			return a, fmt.Sprintf("want an IP address or localhost as the host, such as %s, got %q", example, host)
		}
		if !addr.IsUnspecified() {
			a.addr = addr.Unmap()
		}
	}
	a.ok = true
	return a, ""
}

// checkAdminPort: the admin listener's port, and the agent's (AgentPort,
// on ProxyAddr), are not one the proxy, an instance or the other listens
// on at an overlapping address.
func (l *loader) checkAdminPort() {
	c, a := l.cfg, l.admin
	agent := adminListener{port: c.AgentPort, ok: c.AgentPort >= 1 && c.AgentPort <= 65535 && l.main.usable("AgentPort")}
	if ip, err := netip.ParseAddr(c.ProxyAddr); err == nil {
		agent.addr = ip.Unmap()
	}
	if a.ok {
		l.checkOwnPort("AdminAddr", "the admin listener", a)
	}
	if agent.ok {
		l.checkOwnPort("AgentPort", "the agent", agent)
		if a.ok && a.port == agent.port && overlap(a.addr, agent.addr) {
			l.add(l.main.errorf("AgentPort", "port %d is also AdminAddr's (%s:%d); the agent needs a port of its own",
				agent.port, c.Path, c.Lines["AdminAddr"]))
		}
	}
}

// checkOwnPort: the port of a listener of the daemon's own (key's) is not
// one the proxy or an instance listens on at an overlapping address.
func (l *loader) checkOwnPort(key, what string, a adminListener) {
	c := l.cfg
	reported := false
	clash := func(other, at string, first, last int) {
		if !reported && a.port >= first && a.port <= last {
			reported = true // one clash says it: the port must change
			l.add(l.main.errorf(key, "port %d is also %s (%s); %s needs a port of its own", a.port, other, at, what))
		}
	}
	if proxyAddr, err := netip.ParseAddr(c.ProxyAddr); err == nil && overlap(a.addr, proxyAddr) {
		if c.ProxyPort != 0 && l.main.usable("ProxyPort") {
			clash("ProxyPort", fmt.Sprintf("%s:%d", c.Path, c.Lines["ProxyPort"]), c.ProxyPort, c.ProxyPort)
		}
		if l.goodHTTPS {
			clash("HTTPSPort", fmt.Sprintf("%s:%d", c.Path, c.Lines["HTTPSPort"]), c.HTTPSPort, c.HTTPSPort)
		}
		for _, s := range c.Services {
			if s.Enabled && l.goodPort[s] {
				clash(fmt.Sprintf("the port of service %q", s.Name), where(s, "port"), s.Port, s.Port)
			}
		}
	}
	for _, s := range c.Services {
		if ip, err := netip.ParseAddr(s.ServerIP); err == nil && s.Enabled && l.goodRange[s] && overlap(a.addr, ip) {
			first, last := s.reservedPorts()
			clash(fmt.Sprintf("one of the instance ports %d..%d of service %q", first, last, s.Name),
				where(s, "start_instance_port"), first, last)
		}
	}
}

// overlap reports whether listeners at a and b would contend for one
// port: the same address, or either of them every interface (the zero or
// an unspecified Addr).
func overlap(a, b netip.Addr) bool {
	all := func(x netip.Addr) bool { return !x.IsValid() || x.IsUnspecified() }
	return all(a) || all(b) || a.Unmap() == b.Unmap()
}

// checkAccessLogs checks the access log files that are set: each may be
// missing (the daemon makes it), but not be a folder or lie below a file.
// It is Load's alone, as it reads the file system.
func (l *loader) checkAccessLogs() {
	c, k := l.cfg, l.main
	if k.usable("AccessLog") && c.AccessLog != "" {
		if msg := logFileProblem(c.AccessLog); msg != "" {
			l.add(k.errorf("AccessLog", "%s: %s", c.AccessLog, msg))
		}
	}
	for _, s := range c.Services {
		sk := l.svc[s]
		if s.Enabled && sk.set["access_log"] && s.AccessLog != AccessLogOff {
			if msg := logFileProblem(s.AccessLog); msg != "" {
				l.add(sk.errorf("access_log", "%s: %s", s.AccessLog, msg))
			}
		}
	}
	l.checkOutputIsNoAccessLog()
}

// checkOutputIsNoAccessLog refuses a service whose instances' output
// (LogDir/NAME.log) would be an access log too (both would write to it),
// or cannot be appended to (a folder there).
func (l *loader) checkOutputIsNoAccessLog() {
	c := l.cfg
	if !l.main.usable("LogDir") {
		return
	}
	output := map[string]*Service{}
	for _, s := range c.Services {
		path := filepath.Join(c.LogDir, s.Name+".log")
		output[path] = s
		if msg := logFileProblem(path); s.Enabled && msg != "" {
			l.add(l.svc[s].errorf("name", "service %s: its instances' output goes to %s, which %s", s.Name, path, msg))
		}
	}
	check := func(path string, k *fileKeys, key string) {
		if s := output[path]; s != nil {
			l.add(l.svc[s].errorf("name", "service %s: its instances' output goes to %s, which %s in %s names as an access log too; rename the service or move that access log",
				s.Name, path, key, k.file))
		}
	}
	if l.main.usable("AccessLog") && c.AccessLog != "" {
		check(c.AccessLog, l.main, "AccessLog")
	}
	for _, s := range c.Services {
		if sk := l.svc[s]; sk.set["access_log"] && sk.usable("access_log") && s.AccessLog != AccessLogOff {
			check(s.AccessLog, sk, "access_log")
		}
	}
}

// logFileProblem is what stops path from being appended to as a log, or
// "": a path that does not exist yet is fine.
func logFileProblem(path string) string {
	info, err := os.Stat(path)
	switch {
	case err == nil && info.IsDir():
		return "is a folder, not a file"
	case err == nil, errors.Is(err, fs.ErrNotExist):
		return "" // a file, a device (/dev/stdout) or a pipe; or made by the daemon
	}
	return cause(err)
}
