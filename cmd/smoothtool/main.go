// Command smoothtool controls smoothserve through its control socket.
//
//	smoothtool [-c FILE] start [all|NAME]
//	smoothtool [-c FILE] stop [all|NAME] [--force]
//	smoothtool [-c FILE] restart [all|NAME]
//	smoothtool [-c FILE] status [--json]
//	smoothtool [-c FILE] upgrade
//	smoothtool [-c FILE] reload
//	smoothtool [-c FILE] logs NAME|all [-f] [-n N]
//	smoothtool [-c FILE] drain [--wait] [--timeout D] | undrain
//	smoothtool [-c FILE] drain NAME#SLOT [--force] | undrain NAME#SLOT
//	smoothtool hash-password
//
// The seed's forms (-start all, -stop NAME, -restart all, -status,
// -upgrade, -logs NAME, -force, -json, -config FILE) are accepted too. It
// finds the daemon through the ControlSocket of smoothserve.yaml, reading
// no service file for it, so that a broken one does not keep an operator
// from stopping the daemon or asking its status (logs
// reads them for the services' names, and does without them). An invalid
// smoothserve.yaml does not either, as long as its ControlSocket (or the
// default, beside it) can be read: smoothtool warns, naming each problem,
// and goes on; a start of the daemon, a reload and an upgrade refuse it.
// status shows each instance's CPU and memory as the daemon measured them.
//
// Exit status: 0 done, 1 failed (the reason on stderr), 2 usage error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"smoothserve/config"
	"smoothserve/control/api"
	"smoothserve/control/client"
	"smoothserve/internal/priority"
)

// toolNice is how far below its own priority smoothtool waits.
const toolNice = 10

// quickTimeout bounds a request that the daemon answers at once.
const quickTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "smoothtool: %v\n\n%s", err, usage)
		return 2
	}
	if cmd.verb == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if cmd.verb == "hash-password" { // needs no configuration
		return runHashPassword(os.Stdin, stdout, stderr)
	}
	// Ctrl-C cancels what smoothtool waits for; a restart or a start the
	// daemon runs for it is cancelled with it, as the request goes away.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := execute(ctx, cmd, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "smoothtool: %v\n", err)
		return 1
	}
	return 0
}

// tool is one command being carried out.
type tool struct {
	cmd  command
	main *config.Config // smoothserve.yaml alone, read leniently: no Services
	// mainProblems is what is wrong with smoothserve.yaml (nil: nothing).
	// main is still good for finding the daemon, not for starting one.
	mainProblems error
	client       *client.Client
	out          io.Writer // results
	notes        io.Writer // progress notes
}

func execute(ctx context.Context, cmd command, stdout, stderr io.Writer) error {
	mainCfg, problems := config.LoadMainLenient(cmd.config)
	if mainCfg == nil {
		return configError(problems)
	}
	t := &tool{cmd: cmd, main: mainCfg, mainProblems: problems,
		client: client.Dial(mainCfg.ControlSocket), out: stdout, notes: stderr}
	if cmd.verb != "start" {
		// The other commands only wait for the daemon: they yield the CPU
		// to the requests it serves. (start may run the daemon, which
		// would inherit the priority.)
		priority.Lower(toolNice)
	}
	switch cmd.verb {
	case "start": // warns itself, when it finds the daemon running
		return t.start(ctx)
	case "reload": // the daemon refuses an invalid configuration, saying why
		return t.reload(ctx)
	case "upgrade":
		return t.upgrade(ctx)
	}
	t.warnInvalidMain()
	switch cmd.verb {
	case "stop":
		if cmd.target == "all" {
			return t.stopDaemon(ctx)
		}
		return t.stopService(ctx)
	case "restart":
		return t.restart(ctx)
	case "status":
		return t.status(ctx)
	case "logs":
		return t.logs(ctx)
	case "drain", "undrain":
		return t.drain(ctx)
	}
	return fmt.Errorf("no command %q", cmd.verb) // parseArgs lets none through
}

// warnInvalidMain says, when smoothserve.yaml is invalid, that the command
// goes on all the same: it only needs to reach the running daemon, which
// runs the configuration it loaded.
func (t *tool) warnInvalidMain() {
	if t.mainProblems == nil {
		return
	}
	fmt.Fprintf(t.notes, "smoothtool: warning: %s is invalid (smoothserve would not start with it, nor reload or upgrade); "+
		"reaching the running smoothserve at %s all the same:\n  %s\n",
		t.main.Path, t.main.ControlSocket, strings.ReplaceAll(t.mainProblems.Error(), "\n", "\n  "))
}

// reload asks the daemon to apply the configuration on disk and prints
// what it did to each service; it fails if a service could not be changed.
func (t *tool) reload(ctx context.Context) error {
	res, err := t.client.Reload(ctx)
	if err != nil {
		return fmt.Errorf("reload failed: %w", err)
	}
	failed := 0
	for _, ch := range res.Services {
		if ch.Error != "" {
			failed++
			fmt.Fprintf(t.out, "%s  %s, but: %s\n", ch.Name, ch.Change, ch.Error)
			continue
		}
		fmt.Fprintf(t.out, "%s  %s\n", ch.Name, ch.Change)
	}
	if failed > 0 {
		return fmt.Errorf("reload: %d of %d services not as their files say", failed, len(res.Services))
	}
	return nil
}

// statusNow asks the daemon's status, bounded, without the instances' CPU
// and memory: every caller but status shows neither, and measuring them
// costs the daemon a scan of /proc (an upgrade's status, a third of its
// CPU here).
func (t *tool) statusNow(ctx context.Context) (*api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, quickTimeout)
	defer cancel()
	return t.client.BriefStatus(ctx)
}

// status prints the daemon's status, with the CPU and memory of each
// instance as the daemon measured them; --json prints its JSON as it is.
func (t *tool) status(ctx context.Context) error {
	if t.cmd.json {
		qctx, cancel := context.WithTimeout(ctx, quickTimeout)
		defer cancel()
		raw, err := t.client.StatusJSON(qctx)
		if err != nil {
			return err
		}
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			raw = append(raw, '\n')
		}
		_, err = t.out.Write(raw)
		return err
	}
	qctx, cancel := context.WithTimeout(ctx, quickTimeout)
	defer cancel()
	st, err := t.client.Status(qctx)
	if err != nil {
		return err
	}
	writeStatus(t.out, st, time.Now(), true)
	return nil
}

// printStatus prints the table after an operation; the operation's
// outcome stands whatever happens here.
func (t *tool) printStatus(ctx context.Context) {
	st, err := t.statusNow(ctx)
	if err != nil {
		fmt.Fprintf(t.notes, "smoothtool: status: %v\n", err)
		return
	}
	writeStatus(t.out, st, time.Now(), false)
}
