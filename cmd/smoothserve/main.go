// Command smoothserve is the daemon: it starts the instances of every
// service in its configuration and proxies HTTP to the ready ones.
//
//	smoothserve [--config FILE] [--check | --print-logrotate UNIT]
//
// --print-logrotate prints the logrotate configuration of the logs of
// FILE, for smoothserve running as systemd unit UNIT (install_smoothserve.sh
// installs it as /etc/logrotate.d/UNIT).
//
// SIGTERM or SIGINT stops it gracefully: requests in progress finish, then
// every instance is drained and stopped. A second signal kills everything
// at once. smoothtool asks for either over the control socket.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"

	"smoothserve/config"
	"smoothserve/daemon"
	"smoothserve/internal/cloexec"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := pflag.NewFlagSet("smoothserve", pflag.ContinueOnError)
	configPath := fs.StringP("config", "c", "smoothserve.yaml", "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit (0: valid, 1: not)")
	logrotate := fs.String("print-logrotate", "", "print the logrotate configuration of the logs, for the systemd `unit` smoothserve runs as, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "smoothserve: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "smoothserve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	cfg, err := config.Load(*configPath)
	if errors.Is(err, config.ErrUnreadable) {
		fmt.Fprintf(os.Stderr, "smoothserve: %v\n", err) // not there: nothing to call invalid
		return 1
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "smoothserve: configuration is invalid:\n%v\n", err)
		return 1
	}
	if *logrotate != "" {
		snippet, err := logrotateSnippet(cfg, *logrotate)
		if err != nil {
			fmt.Fprintf(os.Stderr, "smoothserve: %v\n", err)
			return 1
		}
		fmt.Print(snippet)
		return 0
	}
	if *check {
		for _, w := range cfg.Warnings {
			fmt.Fprintf(os.Stderr, "smoothserve: warning: %s\n", w)
		}
		fmt.Printf("smoothserve: configuration %s is valid: %d services\n", cfg.Path, len(cfg.Services))
		return 0
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// A descriptor it inherited open (a pipe of whoever started it) would
	// pass on to every instance.
	if _, err := cloexec.Mark(); err != nil {
		log.Warn("inherited descriptors may reach the instances", "err", err)
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	d, err := daemon.New(cfg, log)
	if err == nil {
		err = d.Run()
	}
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	return 0
}
