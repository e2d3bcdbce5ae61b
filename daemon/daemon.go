package daemon

import (
	"context"
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

	"smoothserve/autorestart"
	"smoothserve/certs"
	"smoothserve/config"
	"smoothserve/connpass"
	"smoothserve/control"
	"smoothserve/handoff"
	"smoothserve/internal/httpstop"
	"smoothserve/internal/procstat"
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
// Ownership: cfg is the running configuration (apply.go) and sets the
// rotation of each of its services: both replaced whole, under mu, only by
// Apply and reload; cfg is read by anyone with config(), sets with
// setsNow(). applying (under mu) holds one lock per service, for one
// change of it at a time. The components set in New are read-only after;
// ctl is set when the control component starts, before anything that
// reads it (an upgrade waits for ready, which comes after).
type Daemon struct {
	log   *slog.Logger
	upg   *upgrade.Upgrader
	px    *proxy.Server
	sup   *supervisor.Supervisor
	sets  map[string]*upstream.Set
	ctlLn net.Listener
	ports *proxyPorts
	ready chan struct{} // closed once this process is the ready daemon
	ctl   *controlServer
	// stops is the control API's way to stop the daemon, as signals do:
	// false asks for a graceful stop, true for killing everything at once.
	stops chan bool
	// hups wakes upgradeOnSignals for a SIGHUP; one slot: a wake-up
	// pending stands for every SIGHUP since (hupsSeen counts them).
	hups chan struct{}
	// hupsSeen counts the SIGHUPs that came; hupsServed is what it was
	// when the last upgrade started the binary (those it answers).
	hupsSeen, hupsServed atomic.Uint64
	// handedOver is closed once this process, replaced, has let go of its
	// connections: a SIGHUP not acted on yet goes to the new process.
	handedOver chan struct{}
	supDone    chan error // the supervisor's Run has returned, with this
	// pass sends the clients' connections to the process that replaces
	// this one; set while an upgrade is under way and after it succeeded.
	pass atomic.Pointer[connpass.Sender]

	ar atomic.Pointer[autorestart.Deployer] // set once auto_restart runs

	certs *certs.Manager // the HTTPS port's certificates; nil without HTTPSPort
	logs  accessLogs     // the open access logs

	adminLn  net.Listener     // AdminAddr's; nil: none
	adminSrv *httpstop.Server // serving adminLn, once the control component started
	agentLn  net.Listener     // AgentPort's; nil: none
	// agentStop ends serving agentLn; agentDone is closed then. Set by the
	// control component's start, before the daemon is ready (and so
	// before any upgrade can call stopAnswering).
	agentStop context.CancelFunc
	agentDone chan struct{}

	host *hostDrain // the host's drain (drain.go)

	upgrades upgradeCounts  // for the metrics
	rollouts rolloutCounter // for the metrics

	usage *procstat.Sampler // the instances' CPU and memory, for Status; nil: not measured

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
	d := &Daemon{log: log, upg: upg, ready: make(chan struct{}), stops: make(chan bool, 2), supDone: make(chan error, 1),
		hups: make(chan struct{}, 1), handedOver: make(chan struct{}),
		applying: make(map[string]*sync.Mutex), usage: procstat.NewSampler()}
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
		d.sets[svc.Name] = newSet(svc)
	}
	if err := d.newCerts(cfg); err != nil {
		upg.Stop()
		return nil, err
	}
	var challenge proxy.ChallengeFunc
	if d.certs != nil {
		challenge = d.certs.HTTPChallenge
	}
	d.px, err = proxy.New(proxy.Options{
		HTTPChallenge:   challenge,
		HeaderTimeout:   cfg.HeaderTimeout,
		IdleTimeout:     cfg.IdleTimeout,
		MaxHeaderBytes:  cfg.MaxHeaderBytes,
		MaxHeaderFields: cfg.MaxHeaderFields,
		BodyTimeout:     cfg.BodyTimeout,
		TrustedProxies:  cfg.TrustedProxies,
		Logger:          log,
	}, routesFor(cfg, d.sets, d.logFor))
	if err != nil {
		upg.Stop()
		return nil, err
	}
	if err := d.listen(); err != nil {
		upg.Stop()
		return nil, err
	}
	d.host = newHostDrain(d.px, cfg.StateDir, cfg.DrainDelay, log)
	d.host.restore()
	d.sup = supervisor.New(cfg, d.sets, log)
	d.sup.SetMakeRoom(d.px.MakeRoom) // a start or a probe out of descriptors closes idle connections too
	stateFile := filepath.Join(cfg.StateDir, stateFileName)
	prior, err := handoff.Read(stateFile)
	if err != nil {
		log.Error("the state file cannot be read: instances of an earlier smoothserve are not adopted", "err", err)
		prior = nil
	}
	d.sup.Handoff(stateFile, prior, upg.HasParent())
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
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(signals)
	cs := d.components()
	startAll(cs)
	hupCtx, stopHups := context.WithCancel(context.Background())
	defer stopHups()
	hupsDone := make(chan struct{})
	go d.upgradeOnSignals(hupCtx, hupsDone)
	log.Info("smoothserve started", "pid", os.Getpid(), "config", cfg.Path, "ports", fmt.Sprint(cfg.ProxyPorts()),
		"upgraded", d.upg.HasParent())

	var cause error
	force := false
wait:
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				d.hupsSeen.Add(1)
				select {
				case d.hups <- struct{}{}:
				default:
					log.Info("SIGHUP: an upgrade asked by signal is waiting already; this one is the same")
				}
				continue
			}
			if sig == syscall.SIGUSR1 {
				go d.reopenLogs()
				continue
			}
			log.Info("stopping gracefully; a second signal kills everything", "signal", sig.String())
			break wait
		case force = <-d.stops:
			log.Info("stopping, as smoothtool asked", "force", force)
			break wait
		case <-d.upg.Exit():
			d.log.Info("the new smoothserve took over; draining and exiting without stopping instances")
			// The instances are the new process's from now on, also while
			// this one finishes its last connections (releaseAll: the
			// proxy's drain, up to UpgradeDrainTimeout): one that exits
			// meanwhile (the new process rolled it) is not this one's to
			// kill the group of, nor to report lost. The supervisor is
			// frozen already: it starts nothing.
			d.sup.Detach()
			// Before the release lowers this process to the idle class
			// (the supervisor's). An upgrade asked on the admin page is
			// answered meanwhile: upgrade returns without waiting for
			// this, and stopAnswering waits for its answer.
			stopPassing := d.passSIGHUPsOn(signals)
			d.stopAnswering()
			releaseAll(cs)
			stopPassing()
			close(d.handedOver)
			<-hupsDone // a SIGHUP it had not acted on is passed on
			d.log.Info("handed over; exiting")
			return nil
		case err := <-d.ports.errs:
			cause = err
			log.Error("proxy failed; stopping", "err", err)
			break wait
		case err := <-d.supDone:
			// Run returns only when its context ends; anything else is a bug.
			return fmt.Errorf("supervisor stopped unexpectedly: %v", err)
		}
	}
	stopHups() // this process stops: no upgrade asked by signal from here on
	return d.stop(cs, signals, force, cause)
}

// stop stops the daemon for good: the components stop gracefully (the
// proxy finishes the requests in progress, then the instances are drained
// and stopped), unless a second signal, or smoothtool stop --force, cuts
// it short by killing everything.
func (d *Daemon) stop(cs []component, signals <-chan os.Signal, force bool, cause error) error {
	// No upgrade from now on. A process stopped before it took over stops
	// at its own priority, not the one it started at.
	d.upg.RestorePriority()
	d.upg.NotifySystemdStopping()
	d.upg.Stop()
	defer d.removePidFile()
	stopped := make(chan error, 1)
	go func() { stopped <- stopAll(cs) }()
	kill := func(by string) error {
		d.log.Warn("killing every instance now", "by", by)
		d.sup.Kill()
		d.px.Close()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
		}
		d.ctl.close()
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
			d.log.Info("smoothserve stopped")
			return cause
		case sig := <-signals:
			if sig == syscall.SIGUSR1 {
				go d.reopenLogs()
				continue
			}
			if sig == syscall.SIGHUP {
				continue
			}
			return kill("a second " + sig.String())
		case force := <-d.stops:
			if force {
				return kill("smoothtool stop --force")
			}
			// Asked again to stop gracefully: that is under way.
		}
	}
}

// listen opens (or inherits) every proxy port, and the HTTPS port.
func (d *Daemon) listen() error {
	d.ports = newProxyPorts(d.config().ProxyAddr, d.upg, d.px)
	for _, port := range d.config().ProxyPorts() {
		if _, err := d.ports.open(port, nil); err != nil {
			return err
		}
	}
	if d.certs != nil {
		if _, err := d.ports.open(d.config().HTTPSPort, d.certs.TLSConfig()); err != nil {
			return err
		}
	}
	if err := d.listenAgent(); err != nil {
		return err
	}
	return d.listenAdmin()
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
