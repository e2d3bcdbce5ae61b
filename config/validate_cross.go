package config

import (
	"fmt"
	"strconv"
)

// The rules between service files. Each problem is reported at the file read
// later, naming the earlier one, so a clash shows once. Only enabled services
// claim hosts and ports; a disabled one may repeat them, to be switched with.

// checkNames: every service has its own name, enabled or not, as smoothtool
// and the logs know services by name.
func (l *loader) checkNames() {
	seen := map[string]*Service{}
	for _, s := range l.cfg.Services {
		k := l.svc[s]
		if !k.set["name"] {
			continue
		}
		if other, dup := seen[s.Name]; dup {
			l.add(k.errorf("name", "%q is also the name of the service in %s", s.Name, where(other, "name")))
			continue
		}
		seen[s.Name] = s
	}
}

// checkHosts: on one proxy port, one enabled service per host name, and at
// most one default service for the hosts none claims: one without
// server_name, or one with default_server.
func (l *loader) checkHosts() {
	type portHost struct {
		port int
		host string
	}
	claimed := map[portHost]*Service{}
	defaults := map[int]*Service{}
	for _, s := range l.cfg.Services {
		k := l.svc[s]
		if !s.Enabled || !l.goodPort[s] || !k.usable("server_name") {
			continue
		}
		if len(s.ServerNames) == 0 || s.DefaultServer {
			// No continue: a default_server's own hosts are checked too.
			if other := defaults[s.Port]; other != nil {
				l.add(defaultClash(k, s, other))
			} else {
				defaults[s.Port] = s
			}
		}
		for _, host := range s.ServerNames {
			key := portHost{s.Port, host}
			if other := claimed[key]; other == s {
				continue // listed twice, reported by checkServerNames
			} else if other != nil {
				l.add(k.errorf("server_name", "host %q on port %d is claimed by both service %q and service %q (%s)",
					host, s.Port, s.Name, other.Name, where(other, "server_name")))
				continue
			}
			claimed[key] = s
		}
	}
}

// defaultClash is the error of s, read after other, being the default
// service of the port other is the default of already. It blames the key
// that makes s the default: default_server if set, else the server_name it
// lacks.
func defaultClash(k *fileKeys, s, other *Service) *Error {
	if !s.DefaultServer && !other.DefaultServer {
		return k.errorf("server_name", "service %q and service %q (%s) are both the default service of port %d (no server_name); give one a server_name",
			s.Name, other.Name, where(other, "server_name"), s.Port)
	}
	why := func(svc *Service) (reason, key string) {
		if svc.DefaultServer {
			return "default_server: true", "default_server"
		}
		return "no server_name", "server_name"
	}
	reason, key := why(s)
	otherReason, otherKey := why(other)
	return k.errorf(key, "service %q (%s) and service %q (%s, %s) are both the default service of port %d; a port has at most one",
		s.Name, reason, other.Name, otherReason, where(other, otherKey), s.Port)
}

// checkPortRanges: the instance port ranges of enabled services do not
// overlap, and none holds a port the proxy listens on.
func (l *loader) checkPortRanges() {
	type listener struct {
		port  int
		owner string // how the error names who listens there
		svc   *Service
	}
	var proxyPorts []listener
	c := l.cfg
	if c.ProxyPort != 0 && l.main.usable("ProxyPort") {
		proxyPorts = append(proxyPorts, listener{c.ProxyPort, fmt.Sprintf("ProxyPort of %s:%d", c.Path, c.Lines["ProxyPort"]), nil})
	}
	var ranged []*Service
	for _, s := range c.Services {
		if !s.Enabled {
			continue
		}
		if l.goodPort[s] {
			proxyPorts = append(proxyPorts, listener{s.Port, fmt.Sprintf("port of service %q, %s", s.Name, where(s, "port")), s})
		}
		if l.goodRange[s] {
			ranged = append(ranged, s)
		}
	}
	for i, s := range ranged {
		k := l.svc[s]
		first, last := s.reservedPorts()
		for _, other := range ranged[:i] {
			ofirst, olast := other.reservedPorts()
			if first <= olast && ofirst <= last {
				l.add(k.errorf("start_instance_port", "service %q reserves ports %d..%d, overlapping ports %d..%d of service %q (%s)",
					s.Name, first, last, ofirst, olast, other.Name, where(other, "start_instance_port")))
			}
		}
		reported := map[int]bool{}
		for _, p := range proxyPorts {
			if p.port < first || p.port > last || reported[p.port] {
				continue
			}
			reported[p.port] = true
			owner := p.owner
			if p.svc == s {
				owner = "its own port"
			}
			l.add(k.errorf("start_instance_port", "service %q reserves ports %d..%d, which include proxy port %d (%s)",
				s.Name, first, last, p.port, owner))
		}
	}
}

// where is FILE:LINE of key in s's file, for naming the other party of a
// clash.
func where(s *Service, key string) string {
	line := s.Lines[key]
	if line == 0 {
		return s.File
	}
	return s.File + ":" + strconv.Itoa(line)
}
