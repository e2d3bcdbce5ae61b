package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"smoothserve/config"
	"smoothserve/connpass"
	"smoothserve/control"
	"smoothserve/handoff"
	"smoothserve/proxy"
	"smoothserve/supervisor"
	"smoothserve/upgrade"
	"smoothserve/upstream"
)

// stateFileName is the state file in StateDir: the instances, for the next
// smoothserve to adopt.
const stateFileName = "smoothserve.state"

// Daemon is one smoothserve process: its listeners, proxy, supervisor and
// the ways it ends (stopped, killed, or replaced by an upgrade).
//
// Ownership: cfg is the running configuration (apply.go): replaced whole,
// under mu, only by Apply; read by anyone with config(). applying (under
// mu) holds one lock per service, for one Apply of it at a time. The
// components set in New are read-only after.
type Daemon struct {
	log   *slog.Logger
	upg   *upgrade.Upgrader
	px    *proxy.Server
	sup   *supervisor.Supervisor
	sets  map[string]*upstream.Set
	ctlLn net.Listener
	ports *proxyPorts
	ready chan struct{} // closed once this process is the ready daemon
	// pass sends the clients' connections to the process that replaces
	// this one; set while an upgrade is under way and after it succeeded.
	pass atomic.Pointer[connpass.Sender]

	mu       sync.Mutex
	cfg      atomic.Pointer[config.Config]
	applying map[string]*sync.Mutex
}

// config is the running configuration. Its global settings are those the
// daemon started with; its services are those last applied.
func (d *Daemon) config() *config.Config { return d.cfg.Load() }

// passFile is the name under which a smoothserve gives the one that
// replaces it the receiving end of its connpass pair.
const passFile = "smoothserve-connections"

// New sets the daemon up for cfg: it listens (or inherits the listeners of
// the smoothserve it replaces), and readies the proxy and the supervisor,
// which adopts the instances of an earlier smoothserve. Run runs it.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	upg, err := upgrade.New(cfg.PidFile, cfg.UpgradeTimeout)
	if err != nil {
		return nil, err
	}
	d := &Daemon{log: log, upg: upg, ready: make(chan struct{}), applying: make(map[string]*sync.Mutex)}
	d.cfg.Store(cfg)
	// The control socket before the proxy ports: a second smoothserve of
	// this configuration is refused as such, not for a busy port. After an
	// upgrade, both are inherited.
	d.ctlLn, err = upg.ListenUnix(cfg.ControlSocket, control.Listen)
	if err != nil {
		upg.Stop()
		return nil, err
	}
	d.sets = make(map[string]*upstream.Set)
	for _, svc := range cfg.Services {
		set := upstream.NewSet(svc.Name, svc.StartTimeout)
		set.SetMaxBodySize(svc.MaxBodySize)
		d.sets[svc.Name] = set
	}
	d.px, err = proxy.New(proxy.Options{
		HeaderTimeout:   cfg.HeaderTimeout,
		IdleTimeout:     cfg.IdleTimeout,
		MaxHeaderBytes:  cfg.MaxHeaderBytes,
		MaxHeaderFields: cfg.MaxHeaderFields,
		BodyTimeout:     cfg.BodyTimeout,
		TrustedProxies:  cfg.TrustedProxies,
		Logger:          log,
	}, routesFor(cfg, d.sets))
	if err != nil {
		upg.Stop()
		return nil, err
	}
	if err := d.listen(); err != nil {
		upg.Stop()
		return nil, err
	}
	d.sup = supervisor.New(cfg, d.sets, log)
	stateFile := filepath.Join(cfg.StateDir, stateFileName)
	prior, err := handoff.Read(stateFile)
	if err != nil {
		log.Error("the state file cannot be read: instances of an earlier smoothserve are not adopted", "err", err)
		prior = nil
	}
	d.sup.Handoff(stateFile, prior)
	if f, err := upg.InheritedFile(passFile); err != nil {
		log.Error("the previous smoothserve's client connections cannot be taken over; it closes them", "err", err)
	} else if f != nil {
		go d.takeConnections(f)
	}
	return d, nil
}

// Run runs the daemon until a signal (or smoothtool) stops it, or an
// upgrade replaces it.
func (d *Daemon) Run() error {
	cfg, log := d.config(), d.log
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)
	// stops is the control API's signal: false graceful, true kill.
	stops := make(chan bool, 2)
	ctl := serveControl(d.ctlLn, &daemonControl{d: d, startedAt: time.Now(), stops: stops}, log)

	startServing := d.ports.serve
	// A process started by an upgrade accepts once it is ready: until
	// then the previous one accepts on the same sockets.
	if !d.upg.HasParent() {
		startServing()
	}
	supCtx, stopSup := context.WithCancel(context.Background())
	defer stopSup()
	supDone := make(chan error, 1)
	go func() { supDone <- d.sup.Run(supCtx) }()

	// auto_restart: the rollouts on file changes end before the
	// supervisor is stopped.
	deployDone := make(chan struct{})
	deployCtx, stopDeploy := context.WithCancel(context.Background())
	defer stopDeploy()
	if err := d.startAutoRestart(deployCtx, deployDone); err != nil {
		log.Error(err.Error())
	}
	afterCtx, stopAfter := context.WithCancel(context.Background())
	defer stopAfter()
	go d.becomeReady(afterCtx, startServing)
	log.Info("smoothserve started", "pid", os.Getpid(), "config", cfg.Path, "ports", fmt.Sprint(cfg.ProxyPorts()),
		"upgraded", d.upg.HasParent())

	var cause error
	force := false
wait:
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				go func() {
					pid, err := d.upgrade(context.Background())
					switch {
					case errors.Is(err, upgrade.ErrTookOver):
						// The new process is ready and has the listeners;
						// only its pid could not be read. This one exits.
						log.Warn("upgrade (SIGHUP): the new smoothserve took over", "err", err)
					case err != nil:
						log.Error("upgrade (SIGHUP) failed; this smoothserve goes on serving", "err", err)
					default:
						log.Info("upgrade (SIGHUP): the new smoothserve is ready", "pid", pid)
					}
				}()
				continue
			}
			log.Info("stopping gracefully; a second signal kills everything", "signal", sig.String())
			break wait
		case force = <-stops:
			log.Info("stopping, as smoothtool asked", "force", force)
			break wait
		case <-d.upg.Exit():
			return d.handOver(ctl, stopAfter, stopDeploy, deployDone, stopSup, supDone)
		case err := <-d.ports.errs:
			cause = err
			log.Error("proxy failed; stopping", "err", err)
			break wait
		case err := <-supDone:
			// Run returns only when its context ends; anything else is a bug.
			return fmt.Errorf("supervisor stopped unexpectedly: %v", err)
		}
	}

	// Stopping for good: no upgrade from now on. A process stopped before
	// it took over stops at its own priority, not the one it started at.
	d.upg.Foreground()
	d.upg.Stopping()
	d.upg.Stop()
	stopAfter()
	defer d.removePidFile()
	defer ctl.close() // last, after the instances: smoothtool watches the stop

	// Graceful stop: the proxy finishes the requests in progress, then the
	// instances are drained and stopped. A second signal cuts both short.
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d.stopDeadline())
		defer cancel()
		d.px.Shutdown(ctx)
		stopDeploy()
		<-deployDone
		stopSup()
		stopped <- <-supDone
	}()
	kill := func(by string) error {
		log.Warn("killing every instance now", "by", by)
		d.sup.Kill()
		d.px.Close()
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
			if sig == syscall.SIGHUP {
				continue
			}
			return kill("a second " + sig.String())
		case force := <-stops:
			if force {
				return kill("smoothtool stop --force")
			}
			// Asked again to stop gracefully: that is under way.
		}
	}
}

// becomeReady tells the previous smoothserve (if any), systemd and the pid
// file that this one serves, once its instances are ready; then, with the
// previous one gone, it stops the instances no longer configured and rolls
// the services whose settings changed. A process started by an upgrade
// begins accepting (startServing) then, at its full priority.
func (d *Daemon) becomeReady(ctx context.Context, startServing func()) {
	log := d.log
	wait := d.config().UpgradeTimeout - time.Second
	if !d.upg.HasParent() {
		wait = maxStartTimeout(d.config()) + 5*time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	err := d.sup.WaitReady(wctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		log.Warn("not every instance is ready; serving with those that are", "err", err)
	}
	if d.upg.HasParent() {
		if err := d.upg.Foreground(); err != nil {
			log.Error("not taking over", "err", err)
			return
		}
		startServing()
	}
	if err := d.upg.Ready(); err != nil {
		log.Error("telling the previous smoothserve that this one is ready", "err", err)
		return
	}
	close(d.ready)
	log.Info("smoothserve is ready", "pid", os.Getpid())

	// Until the previous smoothserve has exited it may still send requests
	// to any instance it knew: leave them alone until then.
	pctx, cancel := context.WithTimeout(ctx, d.config().UpgradeDrainTimeout+30*time.Second)
	err = d.upg.WaitForParent(pctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		log.Warn("waiting for the previous smoothserve to exit", "err", err)
	}
	d.upg.Settled()
	if ctx.Err() != nil {
		return
	}
	d.sup.StopLeftovers(ctx)
	for _, name := range d.sup.Changed() {
		log.Info("settings changed since the instances started: rolling", "service", name)
		if _, err := d.sup.Restart(ctx, name, "configuration changed (reload)"); err != nil {
			log.Error("rolling onto the changed settings", "service", name, "err", err)
		}
	}
}

// upgrade replaces this smoothserve with a new process of its binary.
func (d *Daemon) upgrade(ctx context.Context) (int, error) {
	select {
	case <-d.ready:
	default:
		return 0, errors.New("smoothserve is still starting (or replacing the previous one); try again once it is ready")
	}
	// A process that has just replaced its parent can be replaced only
	// once that parent is gone.
	pctx, cancel := context.WithTimeout(ctx, d.config().UpgradeDrainTimeout+5*time.Second)
	err := d.upg.WaitForParent(pctx)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("the previous smoothserve has not exited yet: %w", err)
	}
	// Inside Upgrade's one-at-a-time: the pair goes with the process this
	// upgrade starts.
	var pass *connpass.Sender
	prepare := func() error {
		if err := d.sup.Freeze(); err != nil {
			return err
		}
		d.log.Info("upgrading: starting the new smoothserve", "binary", os.Args[0])
		pass = d.newPass()
		return nil
	}
	abort := func() {
		d.sup.Thaw()
		if pass != nil {
			d.pass.CompareAndSwap(pass, nil)
			pass.Close()
		}
	}
	return d.upg.Upgrade(prepare, abort)
}

// handOver ends this process after an upgrade succeeded: the new one has
// the listeners and the instances. Requests in progress finish, the clients'
// connections go over to the new process, and the instances are left
// running.
func (d *Daemon) handOver(ctl *controlServer, stopAfter, stopDeploy context.CancelFunc, deployDone <-chan struct{},
	stopSup context.CancelFunc, supDone <-chan error) error {
	d.log.Info("the new smoothserve took over; draining and exiting without stopping instances")
	stopAfter()
	stopDeploy()
	<-deployDone
	// The proxy drains first, still routing to every instance: requests
	// in progress are answered, then their connections passed. Only then
	// does the supervisor let go of the instances; it is frozen meanwhile,
	// so it starts and stops nothing.
	ctx, cancel := context.WithTimeout(context.Background(), d.config().UpgradeDrainTimeout)
	defer cancel()
	if err := d.drain(ctx); err != nil {
		d.log.Warn("requests still in progress at UpgradeDrainTimeout were cut", "err", err)
	}
	// No request left here: letting go and exiting can wait for the new
	// process's.
	d.upg.Background()
	d.sup.Detach()
	stopSup()
	<-supDone
	control.KeepSocket(d.ctlLn)
	ctl.close()
	d.log.Info("handed over; exiting")
	return nil
}

// listen opens (or inherits) every proxy port.
func (d *Daemon) listen() error {
	d.ports = newProxyPorts(d.config().ProxyAddr, d.upg, d.px)
	for _, port := range d.config().ProxyPorts() {
		if _, err := d.ports.open(port); err != nil {
			return err
		}
	}
	return nil
}

// removePidFile removes the pid file if it still names this process.
func (d *Daemon) removePidFile() {
	b, err := os.ReadFile(d.config().PidFile)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(d.config().PidFile)
	}
}

// maxStartTimeout is the longest start_timeout of the services.
func maxStartTimeout(cfg *config.Config) time.Duration {
	var d time.Duration
	for _, s := range cfg.Services {
		d = max(d, s.StartTimeout)
	}
	return d
}

// stopDeadline is how long the proxy may wait for requests in progress at
// a stop: as long as the longest drain a service allows, in the
// configuration running now (a stop_timeout applied since the start
// counts), and at least 30 s.
func (d *Daemon) stopDeadline() time.Duration {
	deadline := 30 * time.Second
	for _, s := range d.config().Services {
		deadline = max(deadline, s.StopTimeout)
	}
	return deadline
}

// routesFor is the routing table of cfg's enabled services.
func routesFor(cfg *config.Config, sets map[string]*upstream.Set) []proxy.Route {
	var routes []proxy.Route
	for _, svc := range cfg.Services {
		if set := sets[svc.Name]; svc.Enabled && set != nil {
			routes = append(routes, proxy.Route{Port: svc.Port, Hosts: svc.ServerNames, Default: svc.DefaultServer, Set: set})
		}
	}
	return routes
}
