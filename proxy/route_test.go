package proxy

import (
	"strings"
	"testing"
	"time"

	"smoothserve/upstream"
)

// TestLookup: which service a Host reaches on a port, with and without a
// default service.
func TestLookup(t *testing.T) {
	a := upstream.NewSet("a", time.Second)
	b := upstream.NewSet("b", time.Second)
	w := upstream.NewSet("w", time.Second)
	named := []Route{
		{Port: 1, Hosts: []string{"a.test"}, Set: a},
		{Port: 1, Hosts: []string{"b.test"}, Set: b},
		{Port: 1, Hosts: []string{"*.wild.test"}, Set: w},
	}
	with := func(rs []Route, edit func(rs []Route)) []Route {
		rs = append([]Route(nil), rs...)
		edit(rs)
		return rs
	}
	tests := []struct {
		name   string
		routes []Route
		want   map[string]*upstream.Set // Host → service; nil: 404
	}{
		{"no default: unknown hosts get 404", named, map[string]*upstream.Set{
			"a.test": a, "B.Test:8085": b, "x.wild.test": w, "other.test": nil, "wild.test": nil, "": nil,
		}},
		{"default_server takes its names and the unknown hosts",
			with(named, func(rs []Route) { rs[1].Default = true }),
			map[string]*upstream.Set{
				"a.test": a, "b.test": b, "x.wild.test": w, "other.test": b, "wild.test": b, "": b,
				strings.Repeat("x", maxHostLen+1): b,
			}},
		{"a wildcard service as the default",
			with(named, func(rs []Route) { rs[2].Default = true }),
			map[string]*upstream.Set{"a.test": a, "b.test": b, "x.wild.test": w, "other.test": w}},
		{"a service without names is the default",
			with(named, func(rs []Route) { rs[1].Hosts = nil }),
			map[string]*upstream.Set{"a.test": a, "b.test": b, "x.wild.test": w, "other.test": b}},
		{"a service alone on its port takes every host",
			named[:1],
			map[string]*upstream.Set{"a.test": a, "other.test": a}},
		{"a default on another port changes nothing here",
			append(with(named, func([]Route) {}), Route{Port: 2, Hosts: []string{"c.test"}, Default: true, Set: upstream.NewSet("c", time.Second)}),
			map[string]*upstream.Set{"a.test": a, "other.test": nil, "c.test": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := buildRoutes(tt.routes, nil)
			if err != nil {
				t.Fatal(err)
			}
			pt := table.ports[1]
			for host, want := range tt.want {
				if got := pt.lookup([]byte(host)).setOrNil(); got != want {
					t.Errorf("Host %q: got %s, want %s", host, setName(got), setName(want))
				}
			}
		})
	}
}

// TestBuildRoutesRefusesTwoDefaults: a port has at most one default
// service, however each became it; config reports it first, this guards
// callers that did not load one.
func TestBuildRoutesRefusesTwoDefaults(t *testing.T) {
	a := upstream.NewSet("a", time.Second)
	b := upstream.NewSet("b", time.Second)
	tests := []struct {
		name   string
		routes []Route
		err    string // "": no error
	}{
		{"two default_server",
			[]Route{{Port: 1, Hosts: []string{"a.test"}, Default: true, Set: a}, {Port: 1, Hosts: []string{"b.test"}, Default: true, Set: b}},
			"port 1: services a and b are both its default"},
		{"default_server and no names",
			[]Route{{Port: 1, Hosts: []string{"a.test"}, Default: true, Set: a}, {Port: 1, Set: b}},
			"port 1: services a and b are both its default"},
		{"two without names",
			[]Route{{Port: 1, Set: a}, {Port: 1, Set: b}},
			"port 1: services a and b are both its default"},
		{"default_server without names",
			[]Route{{Port: 1, Default: true, Set: a}, {Port: 1, Hosts: []string{"b.test"}, Set: b}},
			""},
		{"one default per port",
			[]Route{{Port: 1, Hosts: []string{"a.test"}, Default: true, Set: a}, {Port: 2, Hosts: []string{"b.test"}, Default: true, Set: b}},
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildRoutes(tt.routes, nil)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("buildRoutes: %v, want no error", err)
			case tt.err != "" && (err == nil || err.Error() != tt.err):
				t.Errorf("buildRoutes: %v, want %q", err, tt.err)
			}
		})
	}
}

func setName(s *upstream.Set) string {
	if s == nil {
		return "none (404)"
	}
	return s.Name
}
