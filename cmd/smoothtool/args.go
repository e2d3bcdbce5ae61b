package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

const usage = `usage: smoothtool [-c FILE] COMMAND

commands:
  start [all|NAME]    start smoothserve in the background, or a stopped service; wait until ready
  stop [all|NAME]     stop smoothserve gracefully (--force: kill at once), or one service
  restart [all|NAME]  rolling restart of every running service, or of one
  status [--json]     services and their instances, with each instance's CPU and memory
  upgrade             replace smoothserve by its binary as it is on disk now (as SIGHUP), keeping
                      every connection and instance; print the new pid. An invalid configuration
                      (as smoothserve --check finds it) is refused first
  reload              apply the service files as they are on disk now, in the running smoothserve:
                      start services added, stop those removed, roll those changed
  logs NAME|all [-f] [-n N]
                      the last N lines (default 10) of a service's log, LogDir/NAME.log, or of
                      smoothserve's own (all); -f: go on printing lines as they are written
  drain [--wait] [--timeout D]
                      take this host out of its load balancer's rotation: GET /health on AdminAddr
                      answers 503; requests are served as before for DrainDelay, then connections
                      close after their response; --wait: return once no request is in flight
                      (drained), with the figures; --timeout: drained after D, requests in flight or not
  undrain             put the host back: /health answers 200
  drain NAME#SLOT [--force]
                      take one instance out of rotation (it keeps running, for a look at it); never
                      the last one of its service in rotation, unless --force
  undrain NAME#SLOT   put it back in rotation once it answers its readiness check
  hash-password       read a password (no echo on a terminal) and print its bcrypt hash for AdminAuth

flags:
  -c, --config FILE   smoothserve.yaml of the daemon (default ./smoothserve.yaml)
      --force         with stop all: kill every instance at once, no draining; with drain NAME#SLOT:
                      the last instance of its service in rotation too
      --wait          with drain: wait until the host is drained
      --timeout D     with drain: the host is drained after D (such as 30s) at the latest
      --json          with status: the daemon's JSON, with each instance's cpu_percent and rss_bytes
  -f, --follow        with logs: follow the log as tail -F does (rotation, truncation) until Ctrl-C
  -n, --lines N       with logs: how many of the last lines to print (default 10)

The seed's forms work too: -start all, -stop NAME, -restart all, -status,
-upgrade, -logs NAME, -force, -json, -config FILE.
`

// command is one invocation, parsed.
type command struct {
	verb    string // start, stop, restart, status, upgrade, reload, logs or help
	target  string // start, stop, restart, logs: "all" or a service name
	force   bool
	json    bool
	follow  bool // logs -f
	lines   int  // logs -n
	config  string
	wait    bool          // drain --wait
	timeout time.Duration // drain --timeout
}

// usageError is a command line smoothtool cannot make sense of: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// seedWords are the seed's single-dash long flags. pflag reads -start as
// the shorthands -s -t -a -r -t, so they are rewritten to --start first.
var seedWords = []string{"start", "stop", "restart", "status", "upgrade", "logs", "force", "json", "config", "help"}

func seedToLong(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if word, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "="); strings.HasPrefix(a, "-") &&
			!strings.HasPrefix(a, "--") && slices.Contains(seedWords, word) {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}

// parseArgs reads smoothtool's command line: one command, as a subcommand
// (stop web) or in the seed's flag form (-stop web).
func parseArgs(args []string) (command, error) {
	fs := pflag.NewFlagSet("smoothtool", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	cmd := command{}
	fs.StringVarP(&cmd.config, "config", "c", "smoothserve.yaml", "")
	start := fs.String("start", "", "")
	stop := fs.String("stop", "", "")
	restart := fs.String("restart", "", "")
	logs := fs.String("logs", "", "")
	status := fs.Bool("status", false, "")
	upgrade := fs.Bool("upgrade", false, "")
	fs.BoolVar(&cmd.force, "force", false, "")
	fs.BoolVar(&cmd.json, "json", false, "")
	fs.BoolVarP(&cmd.follow, "follow", "f", false, "")
	fs.IntVarP(&cmd.lines, "lines", "n", 0, "")
	fs.BoolVar(&cmd.wait, "wait", false, "")
	fs.DurationVar(&cmd.timeout, "timeout", 0, "")
	help := fs.BoolP("help", "h", false, "")
	if err := fs.Parse(seedToLong(args)); err != nil {
		return cmd, &usageError{msg: err.Error()}
	}
	rest := fs.Args()

	// The command given as a flag, if any.
	var given []string
	for _, f := range []struct {
		name string
		val  *string
	}{{"start", start}, {"stop", stop}, {"restart", restart}, {"logs", logs}} {
		if fs.Changed(f.name) {
			given = append(given, f.name)
			cmd.verb, cmd.target = f.name, *f.val
			// pflag takes the next word whatever it is: -stop -force is a
			// forgotten name, not a service called --force.
			if cmd.target == "" || strings.HasPrefix(cmd.target, "-") {
				return cmd, usagef("--%s: want all or a service name, got %q", f.name, cmd.target)
			}
		}
	}
	if *status {
		given = append(given, "status")
		cmd.verb = "status"
	}
	if *upgrade {
		given = append(given, "upgrade")
		cmd.verb = "upgrade"
	}
	switch {
	case len(given) > 1:
		return cmd, usagef("one command at a time, got %s", strings.Join(given, " and "))
	case len(given) == 1 && len(rest) > 0:
		return cmd, usagef("unexpected argument %q after --%s", rest[0], cmd.verb)
	case len(given) == 0 && len(rest) == 0:
		if *help {
			return command{verb: "help"}, nil
		}
		return cmd, usagef("no command")
	case len(given) == 0:
		if err := cmd.subcommand(rest); err != nil || cmd.verb == "help" {
			return command{verb: cmd.verb}, err
		}
	}
	if *help {
		return command{verb: "help"}, nil
	}
	return cmd, cmd.checkFlags(fs.Changed("lines"))
}

// checkFlags reports a flag given to a command it does not go with, and
// sets what a flag not given means for the command.
func (cmd *command) checkFlags(linesGiven bool) error {
	instance := cmd.target != "" && (cmd.verb == "drain" || cmd.verb == "undrain")
	if cmd.force && (cmd.verb != "stop" || cmd.target != "all") && !(cmd.verb == "drain" && instance) {
		return usagef("--force goes with stop all and drain NAME#SLOT only")
	}
	if (cmd.wait || cmd.timeout != 0) && (cmd.verb != "drain" || instance) {
		return usagef("--wait and --timeout go with drain (of the host) only")
	}
	if cmd.timeout < 0 {
		return usagef("--timeout: want a duration of 0 or more, got %v", cmd.timeout)
	}
	if cmd.json && cmd.verb != "status" {
		return usagef("--json goes with status only")
	}
	if (cmd.follow || linesGiven) && cmd.verb != "logs" {
		return usagef("--follow and --lines go with logs only")
	}
	if cmd.lines < 0 {
		return usagef("--lines: want 0 or more, got %d", cmd.lines)
	}
	if cmd.verb == "logs" && !linesGiven {
		cmd.lines = defaultLogLines
	}
	if cmd.config == "" {
		return usagef("--config: want a file")
	}
	return nil
}

// subcommand reads a command given as a word ("restart web") into cmd.
func (cmd *command) subcommand(words []string) error {
	cmd.verb, words = words[0], words[1:]
	switch cmd.verb {
	case "start", "stop", "restart":
		cmd.target = "all"
		if len(words) > 0 {
			cmd.target, words = words[0], words[1:]
		}
	case "logs":
		if len(words) == 0 {
			return usagef("logs: want a service name, or all for smoothserve's own log")
		}
		cmd.target, words = words[0], words[1:]
	case "drain", "undrain":
		if len(words) > 0 {
			cmd.target, words = words[0], words[1:]
			if _, _, err := parseInstance(cmd.target); err != nil {
				return usagef("%s: %v", cmd.verb, err)
			}
		}
	case "status", "upgrade", "reload", "help", "hash-password":
	default:
		return usagef("unknown command %q", cmd.verb)
	}
	if len(words) > 0 && cmd.verb != "help" {
		return usagef("unexpected argument %q after %s", words[0], cmd.verb)
	}
	return nil
}

func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}
