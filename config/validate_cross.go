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
// server_name, or one with default_server. The services with tls on are
// also served together at HTTPSPort, so they are checked there as well.
func (l *loader) checkHosts() {
	h := &hostClaims{claimed: map[tableHost]*Service{}, defaults: map[routeTable]*Service{}}
	for _, s := range l.cfg.Services {
		if !s.Enabled || !l.svc[s].usable("server_name") {
			continue
		}
		if l.goodPort[s] {
			l.claimHosts(h, routeTable{port: s.Port}, s)
		}
		if table, ok := l.httpsTable(s); ok {
			l.claimHosts(h, table, s)
		}
	}
}

// routeTable is one listener's services, which route by Host together: a
// plain HTTP port, or HTTPSPort.
type routeTable struct {
	port  int
	https bool
}

// String names the table the way errors do: "port 8085", "HTTPS port 8443".
func (t routeTable) String() string {
	if t.https {
		return "HTTPS port " + strconv.Itoa(t.port)
	}
	return "port " + strconv.Itoa(t.port)
}

type tableHost struct {
	table routeTable
	host  string
}

// hostClaims is who has claimed what so far, in checkHosts.
type hostClaims struct {
	claimed  map[tableHost]*Service
	defaults map[routeTable]*Service // the default service of each table
}

// claimHosts records s's hosts, and its being a default service, in table,
// reporting a clash with a service that claimed them first.
func (l *loader) claimHosts(h *hostClaims, table routeTable, s *Service) {
	k := l.svc[s]
	// Two services on one plain port as well as on HTTPSPort clash on the
	// plain port first: that is reported, once.
	seen := func(other *Service) bool {
		return table.https && l.goodPort[s] && l.goodPort[other] && s.Port == other.Port
	}
	if len(s.ServerNames) == 0 || s.DefaultServer {
		// No return: a default_server's own hosts are checked too.
		if other := h.defaults[table]; other == nil {
			h.defaults[table] = s
		} else if !seen(other) {
			l.add(defaultClash(k, s, other, table))
		}
	}
	for _, host := range s.ServerNames {
		key := tableHost{table, host}
		other := h.claimed[key]
		switch {
		case other == nil:
			h.claimed[key] = s
		case other == s, seen(other):
			// listed twice, reported by checkServerNames; or reported above
		default:
			l.add(k.errorf("server_name", "host %q on %s is claimed by both service %q and service %q (%s)",
				host, table, s.Name, other.Name, where(other, "server_name")))
		}
	}
}

// defaultClash is the error of s, read after other, being the default
// service of the table other is the default of already. It blames the key
// that makes s the default: default_server if set, else the server_name it
// lacks.
func defaultClash(k *fileKeys, s, other *Service, table routeTable) *Error {
	if !s.DefaultServer && !other.DefaultServer {
		return k.errorf("server_name", "service %q and service %q (%s) are both the default service of %s (no server_name); give one a server_name",
			s.Name, other.Name, where(other, "server_name"), table)
	}
	why := func(svc *Service) (reason, key string) {
		if svc.DefaultServer {
			return "default_server: true", "default_server"
		}
		return "no server_name", "server_name"
	}
	reason, key := why(s)
	otherReason, otherKey := why(other)
	return k.errorf(key, "service %q (%s) and service %q (%s, %s) are both the default service of %s; a port has at most one",
		s.Name, reason, other.Name, otherReason, where(other, otherKey), table)
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
	if l.goodHTTPS {
		proxyPorts = append(proxyPorts, listener{c.HTTPSPort, fmt.Sprintf("HTTPSPort of %s:%d", c.Path, c.Lines["HTTPSPort"]), nil})
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
