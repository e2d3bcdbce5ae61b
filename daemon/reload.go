package daemon

import (
	"context"
	"fmt"
	"maps"
	"reflect"

	"smoothserve/config"
	"smoothserve/control/api"
	"smoothserve/proxy"
	"smoothserve/supervisor"
	"smoothserve/upstream"
)

// reloadTrigger is the trigger of the rollouts a reload starts.
const reloadTrigger = "smoothtool reload"

// Reload applies the configuration on disk without replacing the process:
// services added are started, removed ones stopped, changed ones rolled
// (Apply), one after another. An invalid configuration changes nothing;
// so does a reload before this process is settled (ready, and the one it
// replaced gone) or during an upgrade (the supervisor refuses).
// The settings of smoothserve.yaml itself (ProxyPort, timeouts, sockets)
// apply at the next upgrade.
func (d *Daemon) Reload(ctx context.Context) (*api.ReloadResult, error) {
	if err := d.settled(ctx); err != nil {
		return nil, err
	}
	cur := d.config()
	cfg, err := config.Load(cur.Path)
	if err != nil {
		return nil, fmt.Errorf("configuration is invalid; nothing changes:\n%w", err)
	}
	res := &api.ReloadResult{}
	d.moveHosts(cfg)
	// A service added (or enabled) that takes a host (or a port's
	// default) from another service (moved from one that is rolled, or
	// from one removed: a service renamed in its file) is added first,
	// before any rollout or removal, so that it is routed as that one
	// gives it up (addService), not once its rollout or its removal is
	// over. The others go in file order.
	changes := make(map[string]api.ServiceChange, len(cfg.Services))
	for _, svc := range cfg.Services {
		if !runs(cur, svc.Name) && d.takesRoutes(svc, cfg) {
			changes[svc.Name] = d.reloadService(ctx, cur.Service(svc.Name), svc, cfg)
		}
	}
	for _, svc := range cfg.Services {
		ch, done := changes[svc.Name]
		if !done {
			ch = d.reloadService(ctx, cur.Service(svc.Name), svc, cfg)
		}
		res.Services = append(res.Services, ch)
	}
	for _, old := range cur.Services {
		if cfg.Service(old.Name) == nil {
			ch := api.ServiceChange{Name: old.Name, Change: api.ChangeRemoved}
			if err := d.removeService(ctx, old.Name); err != nil {
				ch.Error = err.Error()
			}
			res.Services = append(res.Services, ch)
		}
	}
	if ar := d.ar.Load(); ar != nil {
		if err := ar.Watch(d.config()); err != nil {
			d.log.Error("reload: watching the files of the auto_restart services", "err", err)
		}
	}
	for _, ch := range res.Services {
		d.log.Info("reload", "service", ch.Name, "change", ch.Change, "err", ch.Error)
	}
	return res, nil
}

// moveHosts routes the hosts of the services that run now as next says,
// all at once, before any of them is rolled: else a host one service
// gives up and another takes is refused to the second while the first
// still has it (its rollout later in the reload), for good, or not routed
// between the two rollouts. Nothing else of a service changes before its
// rollout: a host moved goes to the instances its new service runs; one
// that a service removed (or disabled) gives up goes to the service
// that takes it at once. A host (or a port's default) that goes to a
// service added stays where it is until that one is added (addService
// takes it: yielding). A table that cannot be built so is left as it
// is: each service's own step reports.
func (d *Daemon) moveHosts(next *config.Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.config()
	mixed := *cur
	mixed.Services = make([]*config.Service, 0, len(cur.Services))
	moved := false
	for _, old := range cur.Services {
		svc := routedAhead(old, cur, next)
		mixed.Services = append(mixed.Services, svc)
		moved = moved || svc != old
	}
	if !moved {
		return
	}
	if err := proxy.CheckRoutes(routesFor(&mixed, d.sets, nil)); err != nil {
		d.log.Info("reload: hosts not moved ahead of the rollouts", "err", err)
		return
	}
	if err := d.commit(&mixed, d.sets); err != nil {
		d.log.Error("reload: hosts not moved ahead of the rollouts", "err", err)
	}
}

// reloadService makes svc, read from disk, what runs for its service,
// which ran old (nil: none).
func (d *Daemon) reloadService(ctx context.Context, old, svc *config.Service, disk *config.Config) api.ServiceChange {
	ch := api.ServiceChange{Name: svc.Name}
	var err error
	switch {
	case old == nil:
		ch.Change = api.ChangeAdded
		err = d.addService(ctx, svc, disk)
	case old.Enabled != svc.Enabled:
		ch.Change = api.ChangeDisabled
		if svc.Enabled {
			ch.Change = api.ChangeEnabled
		}
		if err = d.removeService(ctx, svc.Name); err == nil {
			err = d.addService(ctx, svc, disk)
		}
	case sameSettings(old, svc):
		ch.Change = api.ChangeUnchanged
	case !svc.Enabled:
		ch.Change = api.ChangeKept // nothing runs: the settings wait
		err = d.setRunning(svc)
	case runsSame(old, svc):
		ch.Change = api.ChangeUpdated
		err = d.retune(ctx, svc)
	default:
		ch.Change = api.ChangeRolled
		var r *supervisor.Rollout
		if r, err = d.Apply(ctx, svc, "reload", reloadTrigger); err == nil && r.Outcome == api.RolloutKept {
			ch.Change = api.ChangeKept // stopped by the operator
		}
		if now := d.config().Service(svc.Name); err == nil && now != nil && now.Port != svc.Port {
			err = fmt.Errorf("proxy port %d cannot be opened (see the log): it stays on %d", svc.Port, now.Port)
		}
	}
	if err != nil {
		ch.Error = err.Error()
	}
	return ch
}

// newSet is the rotation of service svc, with the settings the proxy reads
// from it (the supervisor's setCfg changes them at a rollout).
func newSet(svc *config.Service) *upstream.Set {
	set := upstream.NewSet(svc.Name, svc.StartTimeout)
	set.SetMaxBodySize(svc.MaxBodySize)
	set.SetCompress(svc.Compress)
	set.SetResponseHeaderTimeout(svc.ResponseHeaderTimeout)
	return set
}

// sameSettings tells whether a and b run the same way (where in its file
// each key is does not matter).
func sameSettings(a, b *config.Service) bool {
	x, y := *a, *b
	x.Lines, y.Lines = nil, nil
	return reflect.DeepEqual(x, y)
}

// addService starts service svc, new to the running configuration, routes
// it (with the hosts it takes from the services that give them up on disk:
// yielding), and waits until its instances are ready. One whose proxy
// port cannot be opened is not added.
func (d *Daemon) addService(ctx context.Context, svc *config.Service, disk *config.Config) error {
	mu := d.serviceLock(svc.Name)
	mu.Lock()
	defer mu.Unlock()
	if svc.Enabled {
		if _, err := d.ports.open(svc.Port, nil); err != nil {
			return fmt.Errorf("not added: its proxy port cannot be opened: %w", err)
		}
	}
	set := newSet(svc)
	d.mu.Lock()
	sets := maps.Clone(d.sets)
	sets[svc.Name] = set
	next := withService(yielding(d.config(), svc, disk), svc)
	if err := checkRoutes(next, sets); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("not added: %w", err)
	}
	if err := d.sup.AddService(svc, set); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("not added: %w", err)
	}
	err := d.commit(next, sets)
	d.mu.Unlock()
	if err != nil || !svc.Enabled {
		return err
	}
	return d.sup.StartService(ctx, svc.Name) // waits until ready
}

// removeService stops service name and takes it out of the running
// configuration and the routes.
func (d *Daemon) removeService(ctx context.Context, name string) error {
	mu := d.serviceLock(name)
	mu.Lock()
	defer mu.Unlock()
	if err := d.sup.RemoveService(ctx, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sets := maps.Clone(d.sets)
	delete(sets, name)
	return d.commit(withoutService(d.config(), name), sets)
}

// checkRoutes is whether cfg can be routed.
func checkRoutes(cfg *config.Config, sets map[string]*upstream.Set) error {
	if err := proxy.CheckRoutes(routesFor(cfg, sets, nil)); err != nil {
		return fmt.Errorf("routing would be invalid: %w", err)
	}
	return nil
}
