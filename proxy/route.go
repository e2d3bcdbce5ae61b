package proxy

import (
	"fmt"
	"sort"
	"strings"

	"smoothserve/accesslog"
	"smoothserve/upstream"
)

// Route says which hosts of a proxy port a service answers. A port has at
// most one default route, which takes the hosts no route of the port
// claims; a route alone on its port takes every host.
//
// A Route without a Set answers nothing: its AccessLog is where the port
// logs the requests no service takes (a host no route claims, a head that
// could not be parsed), when no route takes the port's unknown hosts (its
// default, or its only route): then they go to that route's log, as nginx
// logs them in its default server's. With Port 0, it is the log of every
// port that has no such route and no log of its own, ports without any
// route included.
type Route struct {
	Port  int
	Hosts []string // lower case; "*.example.com" wildcards; empty: default for the port
	// Default makes the route the port's default as well as its Hosts',
	// as nginx's default_server; false: default only if Hosts is empty.
	Default bool
	Set     *upstream.Set
	// HTTPSPort, when not 0, makes the route answer its requests with a
	// 308 to the same URL on https at that port (HTTPS on, https_redirect),
	// but for ACME HTTP-01 challenges.
	HTTPSPort int
	// AccessLog is where the route's requests are logged; nil: nowhere.
	AccessLog *accesslog.Log
}

// target is what a host of a port routes to.
type target struct {
	set       *upstream.Set
	httpsPort int    // redirect there; 0: proxy to set
	hostName  []byte // the first of its hosts not a wildcard, for a redirect of a request that named none
	stats     *serviceStats
	log       *accesslog.Log
}

// routes is an immutable routing table, swapped whole on reconfiguration.
type routes struct {
	ports    map[int]*portTable
	unrouted *accesslog.Log // the log of a port with neither a fallback nor a log of its own
}

type portTable struct {
	port      int
	exact     map[string]*target
	wildcards []wildcard // longest suffix first
	fallback  *target
	unrouted  *accesslog.Log // the log of a port without a fallback
}

type wildcard struct {
	suffix string // ".example.com"
	t      *target
}

// buildRoutes makes the table of rs; statsFor gives each service its
// counters (nil: none, for a table only checked).
func buildRoutes(rs []Route, statsFor func(string) *serviceStats) (*routes, error) {
	t := &routes{ports: make(map[int]*portTable)}
	count := make(map[int]int)
	for _, r := range rs {
		if r.Set != nil {
			count[r.Port]++
		}
	}
	logs := make(map[int]bool) // the ports a log-only route named
	for _, r := range rs {
		if r.Set == nil {
			if err := logOnly(r, logs); err != nil {
				return nil, err
			}
			if r.Port == 0 {
				t.unrouted = r.AccessLog
			} else {
				t.port(r.Port).unrouted = r.AccessLog
			}
			continue
		}
		pt := t.port(r.Port)
		tg := &target{set: r.Set, httpsPort: r.HTTPSPort, log: r.AccessLog, hostName: firstName(r.Hosts)}
		if statsFor != nil {
			tg.stats = statsFor(r.Set.Name)
		}
		if len(r.Hosts) == 0 || r.Default || count[r.Port] == 1 {
			if pt.fallback != nil && pt.fallback.set != r.Set {
				return nil, fmt.Errorf("port %d: services %s and %s are both its default", r.Port, pt.fallback.set.Name, r.Set.Name)
			}
			pt.fallback = tg
		}
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			if s, ok := strings.CutPrefix(h, "*"); ok {
				pt.wildcards = append(pt.wildcards, wildcard{suffix: s, t: tg})
				continue
			}
			if other, dup := pt.exact[h]; dup && other.set != r.Set {
				return nil, fmt.Errorf("port %d: host %q is claimed by %s and %s", r.Port, h, other.set.Name, r.Set.Name)
			}
			pt.exact[h] = tg
		}
	}
	for _, pt := range t.ports {
		sort.SliceStable(pt.wildcards, func(i, j int) bool {
			return len(pt.wildcards[i].suffix) > len(pt.wildcards[j].suffix)
		})
	}
	return t, nil
}

// port is the table of port p, made if need be.
func (t *routes) port(p int) *portTable {
	pt := t.ports[p]
	if pt == nil {
		pt = &portTable{port: p, exact: make(map[string]*target)}
		t.ports[p] = pt
	}
	return pt
}

// logOnly checks a route without a service: it names a log, once a port
// (0: every port), and nothing else.
func logOnly(r Route, logs map[int]bool) error {
	which := fmt.Sprintf("port %d", r.Port)
	if r.Port == 0 {
		which = "every port"
	}
	if len(r.Hosts) > 0 || r.Default || r.HTTPSPort != 0 {
		return fmt.Errorf("%s: a route without a service only names the access log of requests no service takes", which)
	}
	if logs[r.Port] {
		return fmt.Errorf("%s: two routes without a service name its access log", which)
	}
	logs[r.Port] = true
	return nil
}

// maxHostLen is the longest DNS name, with room for a port.
const maxHostLen = 260

// targets is every target of pt, a target as often as a name leads to it.
func (pt *portTable) targets() []*target {
	ts := make([]*target, 0, len(pt.exact)+len(pt.wildcards)+1)
	for _, t := range pt.exact {
		ts = append(ts, t)
	}
	for _, w := range pt.wildcards {
		ts = append(ts, w.t)
	}
	if pt.fallback != nil {
		ts = append(ts, pt.fallback)
	}
	return ts
}

// lookup finds the service for a Host header value on this port: the port
// is stripped and case is ignored; exact names win over wildcards, and the
// port's default takes the rest.
func (pt *portTable) lookup(host []byte) *target {
	var buf [maxHostLen]byte
	h := stripPort(host)
	if len(h) > len(buf) {
		return pt.fallback
	}
	n := copy(buf[:], h)
	for i := 0; i < n; i++ {
		if c := buf[i]; 'A' <= c && c <= 'Z' {
			buf[i] = c + ('a' - 'A')
		}
	}
	name := buf[:n]
	if n > 0 && name[n-1] == '.' { // "example.com." is example.com
		name = name[:n-1]
	}
	if t, ok := pt.exact[string(name)]; ok {
		return t
	}
	for _, w := range pt.wildcards {
		if len(name) > len(w.suffix) && string(name[len(name)-len(w.suffix):]) == w.suffix {
			return w.t
		}
	}
	return pt.fallback
}

// firstName is the first of hosts that is not a wildcard, lower case; nil
// if none.
func firstName(hosts []string) []byte {
	for _, h := range hosts {
		if !strings.HasPrefix(h, "*.") {
			return []byte(strings.ToLower(h))
		}
	}
	return nil
}

// stripPort removes ":port" from a Host value, minding "[::1]:80".
func stripPort(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		for i := range h {
			if h[i] == ']' {
				return h[:i+1]
			}
		}
		return h
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			return h[:i]
		}
		if h[i] < '0' || h[i] > '9' {
			break
		}
	}
	return h
}

// logFor is where a request of port is logged that routed to tg (nil: to
// no service, or not routed yet); nil: nowhere.
func (s *Server) logFor(port int, tg *target) *accesslog.Log {
	if tg != nil {
		return tg.log
	}
	t := s.routes.Load()
	pt := t.ports[port]
	switch {
	case pt == nil:
		return t.unrouted
	case pt.fallback != nil:
		return pt.fallback.log
	case pt.unrouted != nil:
		return pt.unrouted
	}
	return t.unrouted
}

// name is the name of t's service; "" for no target.
func (t *target) name() string {
	if t == nil {
		return ""
	}
	return t.set.Name
}

// setOrNil is t's set, or nil for no target.
func (t *target) setOrNil() *upstream.Set {
	if t == nil {
		return nil
	}
	return t.set
}
