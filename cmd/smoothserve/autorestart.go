package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"smoothserve/autorestart"
	"smoothserve/config"
	"smoothserve/proxy"
	"smoothserve/supervisor"
	"smoothserve/upstream"
)

// startAutoRestart runs the rollouts on file changes of the auto_restart
// services until ctx is done, then closes done. Routing follows the hosts
// and ports of each newly read configuration: a proxy port not listened on
// yet is opened; one that cannot be leaves the service on its old port.
func startAutoRestart(ctx context.Context, done chan<- struct{}, cfg *config.Config, sup *supervisor.Supervisor,
	px *proxy.Server, sets map[string]*upstream.Set, ports *proxyPorts, log *slog.Logger) error {
	if len(autorestart.Specs(cfg)) == 0 {
		close(done)
		return nil
	}
	// OnConfig runs on the goroutine of whichever service's files changed:
	// mu makes one routing change at a time, and owns served.
	var mu sync.Mutex
	served := make(map[string]int) // the proxy port each service is served on
	for _, svc := range cfg.Services {
		served[svc.Name] = svc.Port
	}
	d, err := autorestart.New(autorestart.Options{
		Config: cfg,
		Sup:    sup,
		Log:    log,
		OnConfig: func(next *config.Config) {
			mu.Lock()
			defer mu.Unlock()
			routes := routesFor(next, sets)
			for i, r := range routes {
				opened, err := ports.open(r.Port)
				if err != nil {
					log.Error("auto_restart: the new proxy port cannot be opened; the service stays on its old one", "service", r.Set.Name,
						"port", r.Port, "old_port", served[r.Set.Name], "err", err)
					routes[i].Port = served[r.Set.Name]
					continue
				}
				if opened {
					log.Info("auto_restart: listening on a new proxy port", "service", r.Set.Name, "port", r.Port)
				}
			}
			if err := px.SetRoutes(routes); err != nil {
				log.Error("auto_restart: routing unchanged", "err", err)
				return
			}
			for _, r := range routes {
				served[r.Set.Name] = r.Port
			}
		},
	})
	if err != nil {
		close(done)
		return fmt.Errorf("auto_restart is off: %w", err)
	}
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			log.Error(err.Error())
		}
	}()
	return nil
}
