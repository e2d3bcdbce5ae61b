package daemon

import (
	"context"
	"time"
)

// component is one part of the daemon, as oklog/run's actors are: how it
// starts, how it stops for good, and how it releases what the new process
// took over at an upgrade. Run starts the components in the order of
// Daemon.components and tears them down in the reverse order, the same
// order for both teardowns (stopAll, releaseAll): what depends on another
// part ends before it.
type component struct {
	name string
	// start starts the component and returns at once.
	start func()
	// stop ends it gracefully (smoothserve is stopping); its error is the
	// daemon's.
	stop func() error
	// release ends it after an upgrade: the new process has the
	// listeners and the instances, and is given the clients'
	// connections (the proxy's release passes them).
	release func()
}

// components lists the daemon's components in the order they start:
//
//   - control: the control API, the admin listener and the agent port,
//     first up and last down, so that smoothtool can watch a stop to its
//     end, and a load balancer sees the host stopping (at an upgrade it
//     stops answering as soon as the new process is ready: see upgrade);
//   - supervisor: the instances (stopped at a stop, let go at an upgrade);
//   - proxy: the proxy ports (requests finish at a stop, while tunnels stay
//     open for their instances to close when told to stop; at an upgrade
//     the clients' connections, tunnels and streams are passed to the new
//     process);
//   - host: the host's drain (smoothtool drain); at a stop the host says
//     it no longer serves (/health, the agent) before the proxy stops;
//   - auto_restart: rollouts on file changes, which need the supervisor;
//   - readiness: telling the previous smoothserve, systemd and the pid
//     file that this one serves, then what waits until the previous one has
//     exited.
func (d *Daemon) components() []component {
	return []component{
		d.controlComponent(),
		d.supervisorComponent(),
		d.proxyComponent(),
		d.hostComponent(),
		d.autoRestartComponent(),
		d.readinessComponent(),
	}
}

func (d *Daemon) controlComponent() component {
	return component{
		name: "control",
		start: func() {
			ctl := &daemonControl{d: d, startedAt: time.Now(), stops: d.stops}
			d.ctl = serveControl(d.ctlLn, ctl, d.px.MakeRoom, d.log)
			d.serveAdmin(ctl)
			d.serveAgent()
		},
		stop: func() error {
			d.stopAnswering()
			d.ctl.close()
			return nil
		},
		release: func() {
			d.stopAnswering()
			d.ctl.stopAccepting()
			d.ctl.close()
		},
	}
}

func (d *Daemon) supervisorComponent() component {
	var supStop context.CancelFunc
	return component{
		name: "supervisor",
		start: func() {
			var ctx context.Context
			ctx, supStop = context.WithCancel(context.Background())
			go func() { d.supDone <- d.sup.Run(ctx) }()
		},
		stop: func() error {
			supStop()
			err := <-d.supDone
			// The proxy stopped first, but for its tunnels (WebSockets):
			// their instances, told to stop, closed them as they saw fit,
			// and their exits closed the rest. Any still open now go.
			d.px.Close()
			return err
		},
		release: func() {
			// No request left here: letting go and exiting can wait for
			// the new process's.
			d.upg.LowerToIdleClass()
			d.sup.Detach()
			supStop()
			<-d.supDone
		},
	}
}

func (d *Daemon) proxyComponent() component {
	return component{
		name: "proxy",
		start: func() {
			// A process started by an upgrade accepts once it is ready
			// (readiness): until then the previous one accepts on the
			// same sockets.
			if !d.upg.HasParent() {
				d.ports.serve()
			}
		},
		stop: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), d.stopDeadline())
			defer cancel()
			d.px.Shutdown(ctx)
			d.stopCerts()
			d.closeLogs()
			return nil
		},
		release: func() {
			// The new process maintains the certificates from now on;
			// this one serves its TLS connections from its cache until
			// they leave.
			d.stopCerts()
			// Still routing to every instance: requests in progress are
			// answered, then their connections passed. The supervisor is
			// frozen meanwhile: it starts and stops nothing.
			ctx, cancel := context.WithTimeout(context.Background(), d.config().UpgradeDrainTimeout)
			defer cancel()
			if err := d.drain(ctx); err != nil {
				d.log.Warn("requests still in progress at UpgradeDrainTimeout were cut", "err", err)
			}
			d.closeLogs()
		},
	}
}

func (d *Daemon) hostComponent() component {
	return component{
		name:  "host",
		start: func() {},
		stop: func() error {
			// Before the proxy stops: /health and the agent say so
			// while it finishes its requests.
			d.host.setStopping()
			d.host.end()
			return nil
		},
		release: func() { d.host.end() },
	}
}

func (d *Daemon) autoRestartComponent() component {
	var (
		arStop context.CancelFunc
		arDone chan struct{}
	)
	return component{
		name: "auto_restart",
		start: func() {
			var ctx context.Context
			ctx, arStop = context.WithCancel(context.Background())
			arDone = make(chan struct{})
			if err := d.startAutoRestart(ctx, arDone); err != nil {
				d.log.Error(err.Error())
			}
		},
		stop:    func() error { arStop(); <-arDone; return nil },
		release: func() { arStop(); <-arDone },
	}
}

func (d *Daemon) readinessComponent() component {
	var readyStop context.CancelFunc
	return component{
		name: "readiness",
		start: func() {
			var ctx context.Context
			ctx, readyStop = context.WithCancel(context.Background())
			go d.becomeReady(ctx)
		},
		stop:    func() error { readyStop(); return nil },
		release: func() { readyStop() },
	}
}

// startAll starts the components in order.
func startAll(cs []component) {
	for _, c := range cs {
		c.start()
	}
}

// stopAll stops the components in reverse order and returns the first
// error.
func stopAll(cs []component) error {
	var first error
	for i := len(cs) - 1; i >= 0; i-- {
		if err := cs[i].stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// releaseAll releases the components in reverse order.
func releaseAll(cs []component) {
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i].release()
	}
}
