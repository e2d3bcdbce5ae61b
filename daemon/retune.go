package daemon

import (
	"context"
	"fmt"
	"reflect"

	"smoothserve/config"
	"smoothserve/proxy"
)

// A reload whose change to a running service is one that no instance runs
// with applies it without a rollout (retune), as nginx's reload leaves its
// upstreams be: the service's hosts, its TLS, the proxy's limits, its
// access log, what auto_restart watches, its file's name. Anything its
// instances are started with, or hold while they run (their command,
// ports, count, health checks, timeouts of a start and a stop), rolls
// them as before.

// runsSame reports whether services a and b start and keep their instances
// the same way: they differ at most in what the proxy, the certificates
// and auto_restart read.
func runsSame(a, b *config.Service) bool {
	x, y := instanceSettings(*a), instanceSettings(*b)
	return reflect.DeepEqual(x, y)
}

// instanceSettings is s without what no instance runs with.
func instanceSettings(s config.Service) config.Service {
	s.File, s.Lines = "", nil
	s.ServerNames, s.DefaultServer = nil, false
	s.TLS, s.TLSCert, s.TLSKey, s.HTTPSRedirect = "", "", "", false
	s.Compress, s.MaxBodySize, s.ResponseHeaderTimeout, s.AccessLog = false, 0, 0, ""
	s.AutoRestart, s.DelayUpdateTime, s.WatchFiles, s.WatchIgnore = false, 0, nil, nil
	s.RestartStrategy = ""
	return s
}

// retune makes svc, which differs from its running settings in nothing
// its instances run with (runsSame), the running settings of its service
// and routes it, replacing no instance. Routes that cannot be built are
// refused before anything changes.
func (d *Daemon) retune(ctx context.Context, svc *config.Service) error {
	mu := d.serviceLock(svc.Name)
	mu.Lock()
	defer mu.Unlock()
	if err := proxy.CheckRoutes(routesFor(withService(d.config(), svc), d.setsNow(), nil)); err != nil {
		return fmt.Errorf("reload: routing would be invalid; nothing changes: %w", err)
	}
	if err := d.sup.Retune(ctx, svc); err != nil {
		return err
	}
	if err := d.setRunning(svc); err != nil {
		return fmt.Errorf("reload: routing unchanged: %w", err)
	}
	d.log.Info("reload: settings applied without a restart: its instances run with none of those changed", "service", svc.Name)
	return nil
}
