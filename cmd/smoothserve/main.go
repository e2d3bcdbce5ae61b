// Command smoothserve is the daemon: it starts the instances of every
// service in its configuration and proxies HTTP to the ready ones.
//
//	smoothserve [--config FILE] [--check]
//
// SIGTERM or SIGINT stops it gracefully: requests in progress finish, then
// every instance is drained and stopped. A second signal kills everything
// at once. smoothtool asks for either over the control socket.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"smoothserve/config"
	"smoothserve/control"
	"smoothserve/proxy"
	"smoothserve/supervisor"
	"smoothserve/upstream"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := pflag.NewFlagSet("smoothserve", pflag.ContinueOnError)
	configPath := fs.StringP("config", "c", "smoothserve.yaml", "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit (0: valid, 1: not)")
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
	if err != nil {
		fmt.Fprintf(os.Stderr, "smoothserve: configuration is invalid:\n%v\n", err)
		return 1
	}
	if *check {
		for _, w := range cfg.Warnings {
			fmt.Fprintf(os.Stderr, "smoothserve: warning: %s\n", w)
		}
		fmt.Printf("smoothserve: configuration %s is valid: %d services\n", cfg.Path, len(cfg.Services))
		return 0
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if err := serve(cfg, log); err != nil {
		log.Error(err.Error())
		return 1
	}
	return 0
}

// serve runs the daemon until a signal (or smoothtool) stops it.
func serve(cfg *config.Config, log *slog.Logger) error {
	// The control socket before the proxy ports: a second smoothserve of
	// this configuration is refused as such, not for a busy port.
	ctlLn, err := control.Listen(cfg.ControlSocket)
	if err != nil {
		return err
	}
	// Listen before starting anything: a busy port is an error at once.
	listeners, err := listen(cfg)
	if err != nil {
		ctlLn.Close()
		return err
	}
	sets := make(map[string]*upstream.Set)
	for _, svc := range cfg.Services {
		sets[svc.Name] = upstream.NewSet(svc.Name, svc.StartTimeout)
	}
	routes := routesFor(cfg, sets)
	px, err := proxy.New(proxy.Options{
		HeaderTimeout:  cfg.HeaderTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		TrustedProxies: cfg.TrustedProxies,
		Logger:         log,
	}, routes)
	if err != nil {
		closeAll(listeners)
		ctlLn.Close()
		return err
	}
	sup := supervisor.New(cfg, sets, log)

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	// stops is the control API's signal: false graceful, true kill.
	stops := make(chan bool, 2)
	ctl := serveControl(ctlLn, &daemonControl{sup: sup, cfg: cfg, startedAt: time.Now(), stops: stops}, log)
	defer ctl.close() // last, after the instances: smoothtool watches the stop

	serveErr := make(chan error, len(listeners))
	for port, ln := range listeners {
		go func() { serveErr <- px.Serve(ln, port) }()
	}
	supCtx, stopSup := context.WithCancel(context.Background())
	defer stopSup()
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Run(supCtx) }()

	// auto_restart: the rollouts on file changes end before the
	// supervisor is stopped.
	deployDone := make(chan struct{})
	deployCtx, stopDeploy := context.WithCancel(context.Background())
	defer stopDeploy()
	if err := startAutoRestart(deployCtx, deployDone, cfg, sup, px, sets, listeners, log); err != nil {
		log.Error(err.Error())
	}
	log.Info("smoothserve started", "pid", os.Getpid(), "config", cfg.Path, "ports", fmt.Sprint(cfg.ProxyPorts()))

	var cause error
	force := false
	select {
	case sig := <-signals:
		log.Info("stopping gracefully; a second signal kills everything", "signal", sig.String())
	case force = <-stops:
		log.Info("stopping, as smoothtool asked", "force", force)
	case err := <-serveErr:
		cause = err
		log.Error("proxy failed; stopping", "err", err)
	case err := <-supDone:
		// Run returns only when its context ends; anything else is a bug.
		return fmt.Errorf("supervisor stopped unexpectedly: %v", err)
	}

	// Graceful stop: the proxy finishes the requests in progress, then the
	// instances are drained and stopped. A second signal cuts both short.
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), maxStopTimeout(cfg))
		defer cancel()
		px.Shutdown(ctx)
		stopDeploy()
		<-deployDone
		stopSup()
		stopped <- <-supDone
	}()
	kill := func(by string) error {
		log.Warn("killing every instance now", "by", by)
		sup.Kill()
		px.Close()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
		}
		return fmt.Errorf("killed by %s", by)
	}
	if force {
		return kill("smoothtool stop --force")
	}
	for {
		select {
		case err := <-stopped:
			if err != nil {
				return err
			}
			log.Info("smoothserve stopped")
			return cause
		case sig := <-signals:
			return kill("a second " + sig.String())
		case force := <-stops:
			if force {
				return kill("smoothtool stop --force")
			}
			// Asked again to stop gracefully: that is under way.
		}
	}
}

// listen opens every proxy port, closing what it opened on failure.
func listen(cfg *config.Config) (map[int]net.Listener, error) {
	listeners := make(map[int]net.Listener)
	for _, port := range cfg.ProxyPorts() {
		addr := net.JoinHostPort(cfg.ProxyAddr, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(listeners)
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		listeners[port] = ln
	}
	return listeners, nil
}

func closeAll(ls map[int]net.Listener) {
	for _, ln := range ls {
		ln.Close()
	}
}

// maxStopTimeout is how long the proxy may wait for requests in progress:
// as long as the longest drain a service allows.
func maxStopTimeout(cfg *config.Config) time.Duration {
	d := 30 * time.Second
	for _, s := range cfg.Services {
		d = max(d, s.StopTimeout)
	}
	return d
}

// routesFor is the routing table of cfg's enabled services.
func routesFor(cfg *config.Config, sets map[string]*upstream.Set) []proxy.Route {
	var routes []proxy.Route
	for _, svc := range cfg.Services {
		if set := sets[svc.Name]; svc.Enabled && set != nil {
			routes = append(routes, proxy.Route{Port: svc.Port, Hosts: svc.ServerNames, Set: set})
		}
	}
	return routes
}
