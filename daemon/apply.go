package daemon

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"smoothserve/autorestart"
	"smoothserve/config"
	"smoothserve/proxy"
	"smoothserve/supervisor"
	"smoothserve/upstream"
)

// The running configuration starts as the one New is given (what the
// supervisor starts, or adopts after an upgrade) and changes one service at
// a time, only here: Apply, for new settings of a service (a file change
// with auto_restart, a reload), and reload's adding and removing of
// services (reload.go). A service's proxy port, hosts and settings become
// the running ones, routed and shown by status, when the rollout that
// carries them has succeeded; a failed rollout leaves the service as it
// was.

// Apply rolls service svc (validated) onto its new settings and, once the
// rollout has succeeded, makes them the running ones: routes, proxy port
// and status follow. A new proxy port that cannot be opened leaves the
// service on its old one (the rest applies). via names who asks, for the
// log ("auto_restart", "reload"); trigger is the rollout's record.
func (d *Daemon) Apply(ctx context.Context, svc *config.Service, via, trigger string) (*supervisor.Rollout, error) {
	mu := d.serviceLock(svc.Name)
	mu.Lock()
	defer mu.Unlock()
	log := d.log.With("service", svc.Name)
	cur := d.config().Service(svc.Name)
	if cur == nil {
		return nil, fmt.Errorf("%w %q", supervisor.ErrUnknownService, svc.Name)
	}
	next := *svc
	if next.Port != cur.Port {
		opened, err := d.ports.open(next.Port, nil)
		switch {
		case err != nil:
			log.Error(via+": the new proxy port cannot be opened; the service stays on its old one",
				"port", next.Port, "old_port", cur.Port, "err", err)
			next.Port = cur.Port
		case opened:
			log.Info(via+": listening on a new proxy port", "port", next.Port)
		}
	}
	// Routes that cannot be built (a second default service on a port)
	// are refused before anything is rolled.
	if err := proxy.CheckRoutes(routesFor(withService(d.config(), &next), d.setsNow(), nil)); err != nil {
		return nil, fmt.Errorf("%s: routing would be invalid; nothing changes: %w", via, err)
	}
	r, err := d.sup.Apply(ctx, &next, trigger)
	if err != nil {
		return r, err
	}
	if err := d.setRunning(&next); err != nil {
		log.Error(via+": routing unchanged", "err", err)
	}
	return r, nil
}

// setRunning makes svc the running settings of its service and routes
// them.
func (d *Daemon) setRunning(svc *config.Service) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commit(withService(d.config(), svc), d.sets)
}

// commit makes next the running configuration, with sets the rotation of
// each of its services, and routes it; the caller holds mu. A table the
// proxy refuses changes nothing.
func (d *Daemon) commit(next *config.Config, sets map[string]*upstream.Set) error {
	if err := d.px.SetRoutes(routesFor(next, sets, d.logFor)); err != nil {
		return err
	}
	d.cfg.Store(next)
	d.sets = sets
	d.setSites(next)
	return nil
}

// setsNow is the rotation of each service; the map is never modified
// (commit replaces it).
func (d *Daemon) setsNow() map[string]*upstream.Set {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sets
}

// serviceLock is the lock that makes one Apply of service name at a time.
func (d *Daemon) serviceLock(name string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	mu := d.applying[name]
	if mu == nil {
		mu = new(sync.Mutex)
		d.applying[name] = mu
	}
	return mu
}

// withService is cfg with svc in place of the service of its name, or
// added after the others.
func withService(cfg *config.Config, svc *config.Service) *config.Config {
	next := *cfg
	next.Services = slices.Clone(cfg.Services)
	if i := slices.IndexFunc(next.Services, func(s *config.Service) bool { return s.Name == svc.Name }); i >= 0 {
		next.Services[i] = svc
	} else {
		next.Services = append(next.Services, svc)
	}
	return &next
}

// withoutService is cfg without service name.
func withoutService(cfg *config.Config, name string) *config.Config {
	next := *cfg
	next.Services = slices.DeleteFunc(slices.Clone(cfg.Services), func(s *config.Service) bool { return s.Name == name })
	return &next
}

// autoRestart is what auto_restart reaches of the daemon: Apply, logged
// as auto_restart's, and the running configuration.
type autoRestart struct{ d *Daemon }

func (a autoRestart) Running() *config.Config { return a.d.config() }

func (a autoRestart) Apply(ctx context.Context, svc *config.Service, trigger string) (*supervisor.Rollout, error) {
	return a.d.Apply(ctx, svc, "auto_restart", trigger)
}

// startAutoRestart runs the rollouts on file changes of the auto_restart
// services until ctx is done, then closes done. It runs with none too: a
// reload may add one.
func (d *Daemon) startAutoRestart(ctx context.Context, done chan<- struct{}) error {
	ar, err := autorestart.New(autorestart.Options{Config: d.config(), Apply: autoRestart{d}, Log: d.log})
	if err != nil {
		close(done)
		return fmt.Errorf("auto_restart is off: %w", err)
	}
	d.ar.Store(ar)
	go func() {
		defer close(done)
		if err := ar.Run(ctx); err != nil {
			d.log.Error(err.Error())
		}
	}()
	return nil
}

var _ autorestart.Applier = autoRestart{}
