package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	def := "smoothserve.yaml"
	tests := []struct {
		args []string
		want command
	}{
		{[]string{"-start", "all"}, command{verb: "start", target: "all", config: def}},
		{[]string{"-start=web"}, command{verb: "start", target: "web", config: def}},
		{[]string{"--start", "web"}, command{verb: "start", target: "web", config: def}},
		{[]string{"-stop", "web"}, command{verb: "stop", target: "web", config: def}},
		{[]string{"-stop", "all", "-force"}, command{verb: "stop", target: "all", force: true, config: def}},
		{[]string{"-restart", "all", "-config", "/etc/s.yaml"}, command{verb: "restart", target: "all", config: "/etc/s.yaml"}},
		{[]string{"-config=/etc/s.yaml", "-status"}, command{verb: "status", config: "/etc/s.yaml"}},
		{[]string{"-status", "-json"}, command{verb: "status", json: true, config: def}},
		{[]string{"-upgrade"}, command{verb: "upgrade", config: def}},
		{[]string{"upgrade", "-c", "x.yaml"}, command{verb: "upgrade", config: "x.yaml"}},
		{[]string{"reload"}, command{verb: "reload", config: def}},
		{[]string{"start"}, command{verb: "start", target: "all", config: def}},
		{[]string{"start", "web"}, command{verb: "start", target: "web", config: def}},
		{[]string{"stop"}, command{verb: "stop", target: "all", config: def}},
		{[]string{"stop", "--force"}, command{verb: "stop", target: "all", force: true, config: def}},
		{[]string{"stop", "all", "--force"}, command{verb: "stop", target: "all", force: true, config: def}},
		{[]string{"restart", "web", "-c", "x.yaml"}, command{verb: "restart", target: "web", config: "x.yaml"}},
		{[]string{"--config", "x.yaml", "status", "--json"}, command{verb: "status", json: true, config: "x.yaml"}},
		{[]string{"status", "-json"}, command{verb: "status", json: true, config: def}},
		{[]string{"logs", "web"}, command{verb: "logs", target: "web", lines: 10, config: def}},
		{[]string{"logs", "all", "-f", "-n", "50"}, command{verb: "logs", target: "all", follow: true, lines: 50, config: def}},
		{[]string{"logs", "-n0", "--follow", "web"}, command{verb: "logs", target: "web", follow: true, config: def}},
		{[]string{"-logs", "web", "--lines=3"}, command{verb: "logs", target: "web", lines: 3, config: def}},
		{[]string{"-logs=all", "-f", "-c", "x.yaml"}, command{verb: "logs", target: "all", follow: true, lines: 10, config: "x.yaml"}},
		{[]string{"help"}, command{verb: "help"}},
		{[]string{"-h"}, command{verb: "help"}},
		{[]string{"status", "--help"}, command{verb: "help"}},
		{[]string{"drain"}, command{verb: "drain", config: def}},
		{[]string{"drain", "--wait", "--timeout", "30s"}, command{verb: "drain", wait: true, timeout: 30 * time.Second, config: def}},
		{[]string{"undrain"}, command{verb: "undrain", config: def}},
		{[]string{"drain", "web#1"}, command{verb: "drain", target: "web#1", config: def}},
		{[]string{"drain", "web#0", "--force"}, command{verb: "drain", target: "web#0", force: true, config: def}},
		{[]string{"undrain", "api-v2#12"}, command{verb: "undrain", target: "api-v2#12", config: def}},
		// A service may be called like a seed word.
		{[]string{"stop", "--", "-force"}, command{verb: "stop", target: "-force", config: def}},
	}
	for _, tt := range tests {
		got, err := parseArgs(tt.args)
		if err != nil || got != tt.want {
			t.Errorf("parseArgs(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestParseArgsUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"upgrade", "now"}, `unexpected argument "now" after upgrade`},
		{[]string{"reboot"}, `unknown command "reboot"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"status", "web"}, `unexpected argument "web" after status`},
		{[]string{"stop", "web", "api"}, `unexpected argument "api" after stop`},
		{[]string{"-stop", "web", "extra"}, `unexpected argument "extra" after --stop`},
		{[]string{"-start"}, "flag needs an argument: --start"},
		{[]string{"-start="}, `--start: want all or a service name, got ""`},
		{[]string{"-stop", "-force"}, `--stop: want all or a service name, got "--force"`},
		{[]string{"-start", "all", "-stop", "all"}, "one command at a time, got start and stop"},
		{[]string{"-status", "status"}, `unexpected argument "status" after --status`},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"-x", "status"}, "unknown shorthand flag: 'x' in -x"},
		{[]string{"-stp", "web"}, "unknown shorthand flag: 's' in -stp"},
		{[]string{"stop", "web", "--force"}, "--force goes with stop all and drain NAME#SLOT only"},
		{[]string{"restart", "-force"}, "--force goes with stop all and drain NAME#SLOT only"},
		{[]string{"start", "--json"}, "--json goes with status only"},
		{[]string{"-config", "", "status"}, "--config: want a file"},
		{[]string{"logs"}, "logs: want a service name, or all for smoothserve's own log"},
		{[]string{"logs", "web", "api"}, `unexpected argument "api" after logs`},
		{[]string{"-logs", "-f"}, `--logs: want all or a service name, got "-f"`},
		{[]string{"logs", "web", "-n", "-2"}, "--lines: want 0 or more, got -2"},
		{[]string{"logs", "web", "-n", "many"}, `invalid argument "many" for "-n, --lines" flag: strconv.ParseInt: parsing "many": invalid syntax`},
		{[]string{"status", "-f"}, "--follow and --lines go with logs only"},
		{[]string{"drain", "web"}, `drain: want NAME#SLOT (such as web#0) for one instance, or nothing for the host, got "web"`},
		{[]string{"drain", "web#x"}, `drain: want a slot number from 0 after '#', got "web#x"`},
		{[]string{"undrain", "#1"}, `undrain: want NAME#SLOT (such as web#0) for one instance, or nothing for the host, got "#1"`},
		{[]string{"drain", "web#-1"}, `drain: want a slot number from 0 after '#', got "web#-1"`},
		{[]string{"drain", "web#+1"}, `drain: want a slot number from 0 after '#', got "web#+1"`},
		{[]string{"drain", "--force"}, "--force goes with stop all and drain NAME#SLOT only"},
		{[]string{"undrain", "web#1", "--force"}, "--force goes with stop all and drain NAME#SLOT only"},
		{[]string{"drain", "web#1", "--wait"}, "--wait and --timeout go with drain (of the host) only"},
		{[]string{"undrain", "--timeout", "5s"}, "--wait and --timeout go with drain (of the host) only"},
		{[]string{"restart", "--wait"}, "--wait and --timeout go with drain (of the host) only"},
		{[]string{"drain", "--timeout", "-5s"}, "--timeout: want a duration of 0 or more, got -5s"},
		{[]string{"drain", "a#1", "b#2"}, `unexpected argument "b#2" after drain`},
		{[]string{"restart", "web", "-n", "5"}, "--follow and --lines go with logs only"},
	}
	for _, tt := range tests {
		_, err := parseArgs(tt.args)
		if err == nil || !isUsage(err) || err.Error() != tt.want {
			t.Errorf("parseArgs(%q) error = %v, want usage error %q", tt.args, err, tt.want)
		}
	}
}

func TestRunUsageExitsTwo(t *testing.T) {
	for _, args := range [][]string{nil, {"reboot"}, {"status", "x"}, {"--nope"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
		if !strings.HasPrefix(errOut.String(), "smoothtool: ") || !strings.Contains(errOut.String(), "usage: smoothtool") {
			t.Errorf("run(%q) stderr %q, want the reason and the usage", args, errOut.String())
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) wrote %q to stdout", args, out.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "usage: smoothtool") {
		t.Errorf("help: exit %d, stdout %q", code, out.String())
	}
}
