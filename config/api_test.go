package config

import (
	"errors"
	"io/fs"
	"testing"
)

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "/etc/a.yaml", Line: 3, Key: "port", Msg: "bad"}, "/etc/a.yaml:3: port: bad"},
		{Error{File: "/etc/a.yaml", Key: "port", Msg: "bad"}, "/etc/a.yaml: port: bad"},
		{Error{File: "/etc/a.yaml", Line: 3, Msg: "bad"}, "/etc/a.yaml:3: bad"},
		{Error{File: "/etc/a.yaml", Msg: "bad"}, "/etc/a.yaml: bad"},
		{Error{Key: "port", Msg: "bad"}, "port: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	list := ErrorList{&tests[0].err, &tests[1].err}
	if got, want := list.Error(), "/etc/a.yaml:3: port: bad\n/etc/a.yaml: port: bad"; got != want {
		t.Errorf("ErrorList.Error() = %q, want %q", got, want)
	}
}

func TestServiceErrorf(t *testing.T) {
	s := &Service{File: "/etc/services/a.yaml", Lines: map[string]int{"executable_path": 7}}
	err := s.Errorf("executable_path", "starting %s: %w", "web#2", fs.ErrPermission)
	if got, want := err.Error(), "/etc/services/a.yaml:7: executable_path: starting web#2: permission denied"; got != want {
		t.Errorf("Errorf = %q, want %q", got, want)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("Errorf does not wrap %w")
	}
	if got, want := s.Errorf("env", "x").Error(), "/etc/services/a.yaml: env: x"; got != want {
		t.Errorf("Errorf for an absent key = %q, want %q", got, want)
	}
}

func TestInstancePort(t *testing.T) {
	s := &Service{StartInstancePort: 8086, InstanceCount: 3}
	tests := []struct {
		slot int
		alt  bool
		want int
	}{
		{0, false, 8086}, {2, false, 8088}, {0, true, 8089}, {2, true, 8091},
	}
	for _, tt := range tests {
		if got := s.InstancePort(tt.slot, tt.alt); got != tt.want {
			t.Errorf("InstancePort(%d, %v) = %d, want %d", tt.slot, tt.alt, got, tt.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("InstancePort(3, false) did not panic for a 3-instance service")
		}
	}()
	s.InstancePort(3, false)
}

func TestExpandArgs(t *testing.T) {
	s := &Service{Args: []string{"-port={port}", "--addr=:{port}/{port}", "-v"}}
	checkEqual(t, "ExpandArgs", s.ExpandArgs(8087), []string{"-port=8087", "--addr=:8087/8087", "-v"})
	checkEqual(t, "Args after", s.Args[0], "-port={port}")
}

func TestProxyPortsAndService(t *testing.T) {
	c := &Config{ProxyPort: 8085, Services: []*Service{
		{Name: "a", Port: 9000, Enabled: true},
		{Name: "b", Port: 8085, Enabled: true},
		{Name: "c", Port: 7000, Enabled: false},
		{Name: "d", Port: 9000, Enabled: true},
	}}
	checkEqual(t, "ProxyPorts", c.ProxyPorts(), []int{8085, 9000})
	c.ProxyPort = 0
	checkEqual(t, "ProxyPorts without ProxyPort", c.ProxyPorts(), []int{8085, 9000})
	if got := c.Service("c"); got == nil || got.Name != "c" {
		t.Errorf(`Service("c") = %v`, got)
	}
	if got := c.Service("zz"); got != nil {
		t.Errorf(`Service("zz") = %v, want nil`, got)
	}
}

func TestSuggest(t *testing.T) {
	fields := serviceKeys(&Service{})
	main := mainKeys(&Config{})
	tests := []struct {
		key    string
		fields map[string]decodeFunc
		want   string
	}{
		{"instance_cout", fields, "instance_count"},
		{"nmae", fields, "name"},
		{"ServerName", fields, "server_name"},
		{"executable-path", fields, "executable_path"},
		{"enable", fields, "enabled"},
		{"colour", fields, ""},
		{"proxy_port", main, "ProxyPort"},
		{"Proxyport", main, "ProxyPort"},
		{"LogDirr", main, "LogDir"},
		{"Listen", main, ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.key, tt.fields); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// TestExpandEnv: {port} in an env value is the instance's port, as in args;
// the entries come by key.
func TestExpandEnv(t *testing.T) {
	s := &Service{Env: map[string]string{"PORT": "{port}", "URL": "http://127.0.0.1:{port}/x", "A": "1"}}
	checkEqual(t, "ExpandEnv", s.ExpandEnv(8087), []string{"A=1", "PORT=8087", "URL=http://127.0.0.1:8087/x"})
}
