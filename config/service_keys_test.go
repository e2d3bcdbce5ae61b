package config

import (
	"path/filepath"
	"testing"
)

// TestWorkingDir: unset, the executable's folder; set, relative to
// smoothserve.yaml's folder as executable_path is, whatever the executable.
func TestWorkingDir(t *testing.T) {
	tests := []struct {
		name, line string // line: added to the service file
		want       string // relative to the setup folder, or absolute
	}{
		{"default", "", "etc/bin"},
		{"relative", "working_dir: ../srv/app\n", "srv/app"},
		{"relative, no dots", "working_dir: bin\n", "etc/bin"},
		{"absolute", "working_dir: /\n", "/"},
		{"trailing slash", "working_dir: ../srv/app/\n", "srv/app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree{
				"etc/smoothserve.yaml": "ProxyPort: 8085\n",
				"etc/services/a.yaml":  web + tt.line,
				"etc/bin/app":          script,
				"srv/app/server.js":    "//",
			}.write(t)
			c, err := Load(filepath.Join(dir, "etc/smoothserve.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if !filepath.IsAbs(want) {
				want = filepath.Join(dir, want)
			}
			checkEqual(t, "WorkingDir", c.Services[0].WorkingDir, want)
			checkEqual(t, "ExecutablePath", c.Services[0].ExecutablePath, filepath.Join(dir, "etc/bin/app"))
		})
	}
}

func TestDefaultServerValue(t *testing.T) {
	for _, tt := range []struct {
		line string
		want bool
	}{
		{"", false},
		{"default_server:\n", false}, // no value: absent
		{"default_server: false\n", false},
		{"default_server: true\n", true},
	} {
		dir := tree{"smoothserve.yaml": "ProxyPort: 8085\n", "services/a.yaml": web + tt.line, "bin/app": script}.write(t)
		if got := mustLoad(t, dir).Services[0].DefaultServer; got != tt.want {
			t.Errorf("%q: DefaultServer = %v, want %v", tt.line, got, tt.want)
		}
	}
}

// TestServiceKeyRules checks the rules of working_dir and default_server
// with the exact message and line each reports, as TestRules does. A
// service file b.yaml is read after a.yaml.
func TestServiceKeyRules(t *testing.T) {
	// other is a second service on port 8085 with its own instance ports;
	// its lines: 1 name, 2 start_instance_port, 3 instance_count,
	// 4 executable_path.
	other := "name: b\nstart_instance_port: 9100\ninstance_count: 1\nexecutable_path: bin/app\n"
	tests := []struct {
		name  string
		files tree // added to smoothserve.yaml ("ProxyPort: 8085") and bin/app
		want  []string
	}{
		{"working_dir valid", tree{"services/a.yaml": web + "working_dir: srv\n", "srv/x": "x"}, nil},
		{"working_dir missing",
			tree{"services/a.yaml": web + "working_dir: srv/nope\n"},
			[]string{"$S/a.yaml:6: working_dir: $D/srv/nope: no such folder"}},
		{"working_dir is a file",
			tree{"services/a.yaml": web + "working_dir: bin/app\n"},
			[]string{"$S/a.yaml:6: working_dir: $D/bin/app: is a file, not a folder"}},
		{"working_dir below a file",
			tree{"services/a.yaml": web + "working_dir: bin/app/x\n"},
			[]string{"$S/a.yaml:6: working_dir: $D/bin/app/x: not a folder"}},
		{"working_dir empty",
			tree{"services/a.yaml": web + "working_dir: ''\n"},
			[]string{`$S/a.yaml:6: working_dir: want a path, got ""`}},
		{"working_dir a list",
			tree{"services/a.yaml": web + "working_dir: [srv]\n"},
			[]string{`$S/a.yaml:6: working_dir: want a path, got a list`}},
		{"disabled service's working_dir may be missing",
			tree{"services/a.yaml": web + "working_dir: srv/nope\nenabled: false\n"},
			nil},

		{"default_server not a bool",
			tree{"services/a.yaml": web + "default_server: yes\n"},
			[]string{`$S/a.yaml:6: default_server: want true or false, got "yes"`}},
		{"default_server beside a named service",
			tree{
				"services/a.yaml": web + "server_name: a.com\ndefault_server: true\n",
				"services/b.yaml": other + "server_name: b.com\n",
			},
			nil},
		{"default_server alone on its port",
			tree{"services/a.yaml": web + "default_server: true\n"},
			nil},
		{"default_server without server_name: one default",
			tree{
				"services/a.yaml": web + "default_server: true\n",
				"services/b.yaml": other + "server_name: b.com\n",
			},
			nil},
		{"two default_server on one port",
			tree{
				"services/a.yaml": web + "server_name: a.com\ndefault_server: true\n",
				"services/b.yaml": other + "server_name: b.com\ndefault_server: true\n",
			},
			[]string{`$S/b.yaml:6: default_server: service "b" (default_server: true) and service "web" (default_server: true, $S/a.yaml:7) are both the default service of port 8085; a port has at most one`}},
		{"default_server after a service without server_name",
			tree{
				"services/a.yaml": web,
				"services/b.yaml": other + "server_name: b.com\ndefault_server: true\n",
			},
			[]string{`$S/b.yaml:6: default_server: service "b" (default_server: true) and service "web" (no server_name, $S/a.yaml) are both the default service of port 8085; a port has at most one`}},
		{"a service without server_name after default_server",
			tree{
				"services/a.yaml": web + "server_name: a.com\ndefault_server: true\n",
				"services/b.yaml": other,
			},
			[]string{`$S/b.yaml:1: server_name: service "b" (no server_name) and service "web" (default_server: true, $S/a.yaml:7) are both the default service of port 8085; a port has at most one`}},
		{"a clashing default_server's hosts are checked too",
			tree{
				"services/a.yaml": web + "server_name: a.com\ndefault_server: true\n",
				"services/b.yaml": other + "server_name: a.com\ndefault_server: true\n",
			},
			[]string{
				`$S/b.yaml:5: server_name: host "a.com" on port 8085 is claimed by both service "b" and service "web" ($S/a.yaml:6)`,
				`$S/b.yaml:6: default_server: service "b" (default_server: true) and service "web" (default_server: true, $S/a.yaml:7) are both the default service of port 8085; a port has at most one`,
			}},
		{"default_server on other ports",
			tree{
				"services/a.yaml": web + "server_name: a.com\ndefault_server: true\n",
				"services/b.yaml": other + "port: 8086\nserver_name: b.com\ndefault_server: true\n",
			},
			nil},
		{"a disabled default_server claims nothing",
			tree{
				"services/a.yaml": web + "server_name: a.com\ndefault_server: true\n",
				"services/b.yaml": other + "server_name: b.com\ndefault_server: true\nenabled: false\n",
			},
			nil},
		{"default_server false is no default",
			tree{
				"services/a.yaml": web + "server_name: a.com\ndefault_server: true\n",
				"services/b.yaml": other + "server_name: b.com\ndefault_server: false\n",
			},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkLoadErrors(t, tt.files, tt.want) })
	}
}
