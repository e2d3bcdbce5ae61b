package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// web is a valid service file; cases change or add lines to it. Its lines:
// 1 name, 2 port, 3 start_instance_port, 4 instance_count, 5 executable_path.
const web = `name: web
port: 8085
start_instance_port: 9000
instance_count: 2
executable_path: bin/app
`

// TestRules checks each rule with the exact message and line it reports.
// $MAIN is smoothserve.yaml, $S the services folder, $D the setup folder.
func TestRules(t *testing.T) {
	tests := []struct {
		name  string
		files tree // added to smoothserve.yaml ("ProxyPort: 8085") and bin/app
		want  []string
	}{
		{"valid", tree{"services/a.yaml": web}, nil},
		{"misspelt key",
			tree{"services/a.yaml": strings.Replace(web, "instance_count", "instance_cout", 1)},
			[]string{
				"$S/a.yaml:1: instance_count: required",
				"$S/a.yaml:4: instance_cout: unknown key (did you mean instance_count?)",
			}},
		{"unknown key, nothing close",
			tree{"services/a.yaml": web + "colour: red\n"},
			[]string{"$S/a.yaml:6: colour: unknown key"}},
		{"misspelt main key",
			tree{"smoothserve.yaml": "proxy_port: 8085\n", "services/a.yaml": web},
			[]string{"$MAIN:1: proxy_port: unknown key (did you mean ProxyPort?)"}},
		{"swapped letters",
			tree{"services/a.yaml": strings.Replace(web, "name:", "nmae:", 1)},
			[]string{"$S/a.yaml:1: nmae: unknown key (did you mean name?)", "$S/a.yaml:1: name: required"}},
		{"wrong type is one error, not also required",
			tree{"services/a.yaml": strings.Replace(web, "instance_count: 2", "instance_count: three", 1)},
			[]string{`$S/a.yaml:4: instance_count: want an integer, got "three"`}},
		{"quoted integer",
			tree{"services/a.yaml": strings.Replace(web, "port: 8085", `port: "8085"`, 1)},
			[]string{`$S/a.yaml:2: port: want an integer, got "8085"`}},
		{"yes is not a bool",
			tree{"services/a.yaml": web + "enabled: yes\n"},
			[]string{`$S/a.yaml:6: enabled: want true or false, got "yes"`}},
		{"list where a string belongs",
			tree{"services/a.yaml": web + "args: -port={port}\n"},
			[]string{`$S/a.yaml:6: args: want a list of strings, got "-port={port}"`}},
		{"env is a mapping",
			tree{"services/a.yaml": web + "env:\n  - A=1\n"},
			[]string{`$S/a.yaml:7: env: want a mapping of names to values, got a list`}},
		{"duplicate key",
			tree{"services/a.yaml": web + "port: 8086\n"},
			[]string{"$S/a.yaml:6: port: duplicate key (first at line 2)"}},
		{"missing required keys at line 1",
			tree{"services/a.yaml": "# comment\nname: web\nport: 8085\n"},
			[]string{
				"$S/a.yaml:2: start_instance_port: required",
				"$S/a.yaml:2: instance_count: required",
				"$S/a.yaml:2: executable_path: required",
			}},
		{"missing executable",
			tree{"services/a.yaml": strings.Replace(web, "bin/app", "bin/nope", 1)},
			[]string{"$S/a.yaml:5: executable_path: $D/bin/nope: no such file"}},
		{"not executable",
			tree{"services/a.yaml": strings.Replace(web, "bin/app", "bin/data", 1), "bin/data": "text"},
			[]string{"$S/a.yaml:5: executable_path: $D/bin/data: not executable"}},
		{"executable is a folder",
			tree{"services/a.yaml": strings.Replace(web, "bin/app", "bin", 1)},
			[]string{"$S/a.yaml:5: executable_path: $D/bin: is a folder, not a file"}},
		{"disabled service's executable may be missing",
			tree{"services/a.yaml": strings.Replace(web, "bin/app", "bin/nope", 1) + "enabled: false\n"},
			nil},
		{"port out of range",
			tree{"services/a.yaml": strings.Replace(web, "port: 8085", "port: 70000", 1)},
			[]string{"$S/a.yaml:2: port: must be 1..65535, got 70000"}},
		{"no port anywhere",
			tree{"smoothserve.yaml": "ProxyAddr: 127.0.0.1\n", "services/a.yaml": strings.Replace(web, "port: 8085\n", "", 1)},
			[]string{"$S/a.yaml:1: port: required: smoothserve.yaml sets no ProxyPort"}},
		{"instance_count too big",
			tree{"services/a.yaml": strings.Replace(web, "instance_count: 2", "instance_count: 65", 1)},
			[]string{"$S/a.yaml:4: instance_count: must be 1..64, got 65"}},
		{"range past 65535",
			tree{"services/a.yaml": strings.Replace(web, "9000", "65534", 1)},
			[]string{"$S/a.yaml:3: start_instance_port: 2 instances reserve ports 65534..65537 (two per instance, for rollouts), past 65535"}},
		{"range holds ProxyPort",
			tree{"services/a.yaml": strings.Replace(web, "9000", "8084", 1)},
			[]string{`$S/a.yaml:3: start_instance_port: service "web" reserves ports 8084..8087, which include proxy port 8085 (ProxyPort of $MAIN:1)`}},
		{"range holds its own port",
			tree{"smoothserve.yaml": "", "services/a.yaml": strings.Replace(web, "8085", "9002", 1)},
			[]string{`$S/a.yaml:3: start_instance_port: service "web" reserves ports 9000..9003, which include proxy port 9002 (its own port)`}},
		{"range holds another service's port",
			tree{
				"services/a.yaml": web,
				"services/b.yaml": "name: b\nport: 9003\nstart_instance_port: 9100\ninstance_count: 1\nexecutable_path: bin/app\n",
			},
			[]string{`$S/a.yaml:3: start_instance_port: service "web" reserves ports 9000..9003, which include proxy port 9003 (port of service "b", $S/b.yaml:2)`}},
		{"overlapping ranges",
			tree{
				"services/a.yaml": web + "server_name: a.com\n",
				"services/b.yaml": strings.Replace(strings.Replace(web, "web", "b", 1), "9000", "9003", 1),
			},
			[]string{`$S/b.yaml:3: start_instance_port: service "b" reserves ports 9003..9006, overlapping ports 9000..9003 of service "web" ($S/a.yaml:3)`}},
		{"same host on the same port",
			tree{
				"services/a.yaml": web + "server_name: a.com, x.com\n",
				"services/b.yaml": "name: b\nserver_name: X.com\nstart_instance_port: 9100\ninstance_count: 1\nexecutable_path: bin/app\n",
			},
			[]string{`$S/b.yaml:2: server_name: host "x.com" on port 8085 is claimed by both service "b" and service "web" ($S/a.yaml:6)`}},
		{"same host on other ports",
			tree{
				"services/a.yaml": web + "server_name: x.com\n",
				"services/b.yaml": "name: b\nport: 8086\nserver_name: x.com\nstart_instance_port: 9100\ninstance_count: 1\nexecutable_path: bin/app\n",
			},
			nil},
		{"two default services on one port",
			tree{
				"services/a.yaml": web,
				"services/b.yaml": "name: b\nstart_instance_port: 9100\ninstance_count: 1\nexecutable_path: bin/app\n",
			},
			[]string{`$S/b.yaml:1: server_name: service "b" and service "web" ($S/a.yaml) are both the default service of port 8085 (no server_name); give one a server_name`}},
		{"a disabled service claims nothing",
			tree{
				"services/a.yaml": web,
				"services/b.yaml": strings.Replace(web, "web", "b", 1) + "enabled: false\n",
			},
			nil},
		{"duplicate names",
			tree{
				"services/a.yaml": web,
				"services/b.yaml": web + "port: 8086\nenabled: false\n",
			},
			[]string{`$S/b.yaml:1: name: "web" is also the name of the service in $S/a.yaml:1`, "$S/b.yaml:6: port: duplicate key (first at line 2)"}},
		{"bad name",
			tree{"services/a.yaml": strings.Replace(web, "name: web", "name: my web", 1)},
			[]string{`$S/a.yaml:1: name: want letters, digits, '_', '.' and '-' only, got "my web"`}},
		{"wildcard",
			tree{"services/a.yaml": web + "server_name: '*.example.com, foo*.com'\n"},
			[]string{`$S/a.yaml:6: server_name: "foo*.com": '*' is allowed only as the whole first label, as in *.example.com`}},
		{"server_ip",
			tree{"services/a.yaml": web + "server_ip: localhost\n"},
			[]string{`$S/a.yaml:6: server_ip: want an IP address, got "localhost"`}},
		{"negative duration",
			tree{"services/a.yaml": web + "delay_running_time: -1\n"},
			[]string{"$S/a.yaml:6: delay_running_time: must not be negative, got -1s"}},
		{"zero timeout",
			tree{"services/a.yaml": web + "stop_timeout: 0\n"},
			[]string{"$S/a.yaml:6: stop_timeout: must be more than 0"}},
		{"zero kill_timeout",
			tree{"services/a.yaml": web + "kill_timeout: 0\n"},
			[]string{"$S/a.yaml:6: kill_timeout: must be more than 0"}},
		{"negative response_header_timeout",
			tree{"services/a.yaml": web + "response_header_timeout: -5s\n"},
			[]string{"$S/a.yaml:6: response_header_timeout: must not be negative, got -5s"}},
		{"health_check",
			tree{"services/a.yaml": web + "health_check: healthz\n"},
			[]string{`$S/a.yaml:6: health_check: want a path starting with /, such as /healthz, got "healthz"`}},
		{"restart_strategy",
			tree{"services/a.yaml": web + "restart_strategy: rolling\n"},
			[]string{`$S/a.yaml:6: restart_strategy: want "surge" or "in_place", got "rolling"`}},
		{"watch_ignore glob",
			tree{"services/a.yaml": web + "watch_ignore: ['[']\n"},
			[]string{`$S/a.yaml:6: watch_ignore: "[" is not a valid glob`}},
		{"TrustedProxies item",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nTrustedProxies:\n  - 10.0.0.0/8\n  - nginx\n", "services/a.yaml": web},
			[]string{`$MAIN:4: TrustedProxies: want a CIDR or an IP address, got "nginx"`}},
		{"MaxHeaderBytes",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nMaxHeaderBytes: 100\n", "services/a.yaml": web},
			[]string{"$MAIN:2: MaxHeaderBytes: must be at least 1024, got 100"}},
		{"MaxHeaderFields zero",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nMaxHeaderFields: 0\n", "services/a.yaml": web},
			[]string{"$MAIN:2: MaxHeaderFields: must be 1..10000, got 0"}},
		{"MaxHeaderFields too many",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nMaxHeaderFields: 10001\n", "services/a.yaml": web},
			[]string{"$MAIN:2: MaxHeaderFields: must be 1..10000, got 10001"}},
		{"MaxHeaderFields quoted",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nMaxHeaderFields: '100'\n", "services/a.yaml": web},
			[]string{`$MAIN:2: MaxHeaderFields: want an integer, got "100"`}},
		{"BodyTimeout zero",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nBodyTimeout: 0\n", "services/a.yaml": web},
			[]string{"$MAIN:2: BodyTimeout: must be more than 0"}},
		{"BodyTimeout negative",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nBodyTimeout: -5s\n", "services/a.yaml": web},
			[]string{"$MAIN:2: BodyTimeout: must not be negative, got -5s"}},
		{"BodyTimeout not a duration",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nBodyTimeout: [60]\n", "services/a.yaml": web},
			[]string{`$MAIN:2: BodyTimeout: want a number of seconds or a duration like "1.5s", got a list`}},
		{"max_body_size negative",
			tree{"services/a.yaml": web + "max_body_size: -10m\n"},
			[]string{"$S/a.yaml:6: max_body_size: must not be negative (0 is no limit), got -10485760 bytes"}},
		{"max_body_size unit",
			tree{"services/a.yaml": web + "max_body_size: 10mb/s\n"},
			[]string{`$S/a.yaml:6: max_body_size: want a number of bytes or a size like "10m", got "10mb/s"`}},
		{"ProxyAddr",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nProxyAddr: localhost\n", "services/a.yaml": web},
			[]string{`$MAIN:2: ProxyAddr: want an IP address, got "localhost"`}},
		{"ControlSocket too long",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nControlSocket: /" + strings.Repeat("s", 107) + "\n", "services/a.yaml": web},
			[]string{"$MAIN:2: ControlSocket: /" + strings.Repeat("s", 107) + " is 108 bytes long; a unix socket path may have at most 107"}},
		{"bad ProxyPort is not blamed on the services",
			tree{"smoothserve.yaml": "ProxyPort: eighty\n", "services/a.yaml": strings.Replace(web, "port: 8085\n", "", 1)},
			[]string{`$MAIN:1: ProxyPort: want an integer, got "eighty"`}},
		{"missing service folder",
			tree{"smoothserve.yaml": "ProxyPort: 8085\nSubConfigDir: conf.d\n"},
			[]string{"$MAIN:2: SubConfigDir: $D/conf.d: no such file or folder"}},
		{"not YAML (scanner error)",
			tree{"services/a.yaml": "name: web\nport: 8085\n  instance_count: 2\n"},
			[]string{"$S/a.yaml:3: not valid YAML: mapping values are not allowed in this context"}},
		{"not YAML (parser error)",
			tree{"services/a.yaml": "name: web\nport: 8085\n- 2\n"},
			[]string{"$S/a.yaml:3: not valid YAML: did not find expected key"}},
		{"not YAML on line 1",
			tree{"services/a.yaml": "name: web: x\n"},
			[]string{"$S/a.yaml:1: not valid YAML: mapping values are not allowed in this context"}},
		{"control character",
			tree{"services/a.yaml": "name: web\n\x01port: 8085\n"},
			[]string{"$S/a.yaml:2: not valid YAML: control characters are not allowed"}},
		{"not a mapping",
			tree{"services/a.yaml": "- name: web\n"},
			[]string{"$S/a.yaml:1: want a mapping of keys, got a list"}},
		{"two documents",
			tree{"services/a.yaml": web + "---\nname: b\n"},
			[]string{"$S/a.yaml:6: a second YAML document (---) is not allowed; write one mapping of keys"}},
		{"empty service file",
			tree{"services/a.yaml": "# nothing yet\n"},
			[]string{"$S/a.yaml: empty service file"}},
		{"every problem, in file order",
			tree{
				"smoothserve.yaml": "ProxyPort: 8085\nLogDirr: logs\n",
				"services/a.yaml":  strings.Replace(web, "instance_count: 2", "instance_count: 0", 1),
				"services/b.yml":   "name: b\nport: x\n",
				"services/c.txt":   "not read",
			},
			[]string{
				"$MAIN:2: LogDirr: unknown key (did you mean LogDir?)",
				"$S/a.yaml:4: instance_count: must be 1..64, got 0",
				"$S/b.yml:1: start_instance_port: required",
				"$S/b.yml:1: instance_count: required",
				"$S/b.yml:1: executable_path: required",
				`$S/b.yml:2: port: want an integer, got "x"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkLoadErrors(t, tt.files, tt.want) })
	}
}

// checkLoadErrors writes files beside a main file and bin/app, loads them,
// and checks the errors Load reports ($S and $D expanded) against want.
func checkLoadErrors(t *testing.T, files tree, want []string) {
	t.Helper()
	all := tree{"smoothserve.yaml": "ProxyPort: 8085\n", "bin/app": script}
	for rel, text := range files {
		all[rel] = text
	}
	dir := all.write(t)
	cfg, err := Load(filepath.Join(dir, "smoothserve.yaml"))
	var expanded []string
	for _, w := range want {
		expanded = append(expanded, expand(dir, w))
	}
	checkEqual(t, "errors", errorLines(t, err), expanded)
	if (cfg == nil) != (err != nil) {
		t.Errorf("Load returned Config %v with error %v; want exactly one of them", cfg != nil, err != nil)
	}
}
