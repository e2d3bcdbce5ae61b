package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A smoothserve.yaml that cannot be read is named as such, with
// ErrUnreadable, by Load and LoadMain alike: a command must not call a file
// that is not there an invalid configuration.
func TestUnreadableMainFile(t *testing.T) {
	dir := tree{"folder.yaml/x": "", "services/a.yaml": web, "bin/app": script}.write(t)
	locked := filepath.Join(dir, "locked.yaml")
	if err := os.WriteFile(locked, []byte("ProxyPort: 8085\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, want string
		notExist   bool
	}{
		{"nope.yaml", "$D/nope.yaml: no such file", true},
		{"nope/smoothserve.yaml", "$D/nope/smoothserve.yaml: no such file", true},
		{"folder.yaml", "$D/folder.yaml: a folder, not a file", false},
		{"locked.yaml", "$D/locked.yaml: cannot read: permission denied", false},
	}
	for _, tt := range tests {
		if tt.file == "locked.yaml" && os.Geteuid() == 0 {
			continue // root reads it anyway
		}
		for name, load := range map[string]func(string) (*Config, error){"Load": Load, "LoadMain": LoadMain} {
			cfg, err := load(filepath.Join(dir, tt.file))
			checkEqual(t, name+"("+tt.file+") errors", errorLines(t, err), []string{expand(dir, tt.want)})
			if cfg != nil {
				t.Errorf("%s(%s) returned a Config", name, tt.file)
			}
			if !errors.Is(err, ErrUnreadable) {
				t.Errorf("%s(%s): errors.Is(err, ErrUnreadable) = false for %v", name, tt.file, err)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Errorf("%s(%s): errors.Is(err, fs.ErrNotExist) = %v, want %v", name, tt.file, got, tt.notExist)
			}
		}
	}
}

// A broken configuration that was read is not ErrUnreadable, even when a
// service file is what cannot be read.
func TestInvalidIsNotUnreadable(t *testing.T) {
	dir := tree{"smoothserve.yaml": "ProxyPort: 8085\n", "bin/app": script, "services/a.yaml": "name: [\n"}.write(t)
	if err := os.Symlink(filepath.Join(dir, "gone.yaml"), filepath.Join(dir, "services", "b.yaml")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(filepath.Join(dir, "smoothserve.yaml"))
	checkEqual(t, "errors", errorLines(t, err), []string{
		expand(dir, "$S/a.yaml:2: not valid YAML: did not find expected node content"),
		expand(dir, "$S/b.yaml: no such file"),
	})
	if errors.Is(err, ErrUnreadable) {
		t.Errorf("errors.Is(err, ErrUnreadable) = true for %v", err)
	}
}

// A tab in the indentation is named as such, at the line that has it,
// whatever yaml.v3 calls it and whichever line it blames.
func TestTabInIndentation(t *testing.T) {
	const tabMsg = "a tab in the indentation (YAML indents with spaces)"
	tests := []struct {
		name  string
		files tree // added to smoothserve.yaml ("ProxyPort: 8085") and bin/app
		want  []string
	}{
		{"service key indented by a tab",
			tree{"services/a.yaml": web + "env:\n\tA: 1\n"},
			[]string{"$S/a.yaml:7: " + tabMsg}},
		{"tab after the spaces of a nested key",
			tree{"services/a.yaml": web + "env:\n  A: 1\n  \tB: 2\n"},
			[]string{"$S/a.yaml:8: " + tabMsg}},
		{"tab at a deeper level than the lines before",
			tree{"services/a.yaml": web + "env:\n  A: 1\n\tB: 2\n"},
			[]string{"$S/a.yaml:8: " + tabMsg}},
		{"list item indented by a tab",
			tree{"services/a.yaml": web + "args:\n  - -port={port}\n\t- -v\n"},
			[]string{"$S/a.yaml:8: " + tabMsg}},
		{"first line",
			tree{"services/a.yaml": "\t" + web},
			[]string{"$S/a.yaml:1: " + tabMsg}},
		{"a comment indented by a tab",
			tree{"services/a.yaml": web + "\t# note\nenabled: true\n"},
			[]string{"$S/a.yaml:6: " + tabMsg}},
		{"a line of nothing but a tab inside a mapping",
			tree{"services/a.yaml": web + "env:\n\t\n  A: 1\n"},
			[]string{"$S/a.yaml:7: " + tabMsg}},
		{"block scalar indented by a tab",
			tree{"services/a.yaml": web + "description: |\n  first\n\tsecond\n"},
			[]string{"$S/a.yaml:8: " + tabMsg}},
		{"in smoothserve.yaml",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nTrustedProxies:\n\t- 127.0.0.1\n", "services/a.yaml": web},
			[]string{"$MAIN:3: " + tabMsg}},
		{"after a flow list that spans lines with a tab in it",
			tree{"services/a.yaml": web + "args: [-v,\n\t-w]\nenv:\n\tA: 1\n"},
			[]string{"$S/a.yaml:9: " + tabMsg}},
		{"in a second document",
			tree{"services/a.yaml": web + "---\n\tname: b\n"},
			[]string{"$S/a.yaml:7: " + tabMsg}},
		// Tabs that YAML allows are no error, and do not hide another one.
		{"tab inside a flow list",
			tree{"services/a.yaml": web + "args: [-v,\n\t-w]\n"},
			nil},
		{"tab inside a flow list, then another error",
			tree{"services/a.yaml": web + "args: [-v,\n\t-w]\nenv: x: y\n"},
			[]string{"$S/a.yaml:8: not valid YAML: mapping values are not allowed in this context"}},
		{"tab after the indentation of a block scalar's text, then another error",
			tree{"services/a.yaml": "args:\n  - |\n    a\n    \tb\n" + web + "env: x: y\n"},
			[]string{"$S/a.yaml:10: not valid YAML: mapping values are not allowed in this context"}},
		{"tab after a key",
			tree{"services/a.yaml": strings.Replace(web, "port: 8085", "port:\t8085", 1)},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkLoadErrors(t, tt.files, tt.want) })
	}
}

// LoadMainLenient returns smoothserve.yaml's Config with its problems
// while where the control socket is is still known, so that smoothtool
// reaches the daemon; and nothing but the problems when it is not.
func TestLoadMainLenient(t *testing.T) {
	tests := []struct {
		name, main string
		socket     string // "": no Config
		want       []string
	}{
		{"valid", "ProxyPort: 8085\n", "$D/smoothserve.sock", nil},
		{"unknown key, default socket", "ProxyPort: 8085\nProxyPrt: 5\n", "$D/smoothserve.sock",
			[]string{"$D/smoothserve.yaml:2: ProxyPrt: unknown key (did you mean ProxyPort?)"}},
		{"bad value, socket written", "ControlSocket: run/s.sock\nProxyPort: 99999\n", "$D/run/s.sock",
			[]string{"$D/smoothserve.yaml:2: ProxyPort: must be 1..65535, got 99999"}},
		{"socket of the wrong type", "ControlSocket: [a]\n", "",
			[]string{"$D/smoothserve.yaml:1: ControlSocket: want a path, got a list"}},
		{"not YAML", "ProxyPort: [\n", "",
			[]string{"$D/smoothserve.yaml:2: not valid YAML: did not find expected node content"}},
	}
	for _, tt := range tests {
		dir := tree{"smoothserve.yaml": tt.main}.write(t)
		cfg, err := LoadMainLenient(filepath.Join(dir, "smoothserve.yaml"))
		var want []string
		for _, w := range tt.want {
			want = append(want, expand(dir, w))
		}
		checkEqual(t, tt.name+": errors", errorLines(t, err), want)
		switch {
		case tt.socket == "" && cfg != nil:
			t.Errorf("%s: returned a Config, want none", tt.name)
		case tt.socket != "" && cfg == nil:
			t.Errorf("%s: returned no Config, want one with ControlSocket %s", tt.name, expand(dir, tt.socket))
		case tt.socket != "" && cfg.ControlSocket != expand(dir, tt.socket):
			t.Errorf("%s: ControlSocket %s, want %s", tt.name, cfg.ControlSocket, expand(dir, tt.socket))
		}
		if main, merr := LoadMain(filepath.Join(dir, "smoothserve.yaml")); (main == nil) != (tt.want != nil) || (merr == nil) != (tt.want == nil) {
			t.Errorf("%s: LoadMain returned %v, %v; want a Config only when valid", tt.name, main, merr)
		}
	}
}

// Every bad item of a list is reported, not the first alone.
func TestEveryBadTrustedProxyIsReported(t *testing.T) {
	checkLoadErrors(t, tree{
		"smoothserve.yaml": "ProxyPort: 8085\nTrustedProxies:\n  - x\n  - 10.0.0.0/8\n  - [y]\n  - 300.1.1.1\n",
		"services/a.yaml":  web,
	}, []string{
		`$MAIN:3: TrustedProxies: want a CIDR or an IP address, got "x"`,
		`$MAIN:5: TrustedProxies: want a CIDR or an IP address, got a list`,
		`$MAIN:6: TrustedProxies: want a CIDR or an IP address, got "300.1.1.1"`,
	})
}
