package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"smoothserve/autorestart"
	"smoothserve/config"
	"smoothserve/proxy"
	"smoothserve/supervisor"
	"smoothserve/upstream"
)

// startAutoRestart runs the rollouts on file changes of the auto_restart
// services until ctx is done, then closes done. Routing follows the hosts
// of each newly read configuration; a proxy port that is not listened on
// yet needs smoothserve to reload (SIGHUP).
func startAutoRestart(ctx context.Context, done chan<- struct{}, cfg *config.Config, sup *supervisor.Supervisor,
	px *proxy.Server, sets map[string]*upstream.Set, listeners map[int]net.Listener, log *slog.Logger) error {
	if len(autorestart.Specs(cfg)) == 0 {
		close(done)
		return nil
	}
	served := make(map[string]int) // the proxy port each service is served on
	for _, svc := range cfg.Services {
		served[svc.Name] = svc.Port
	}
	d, err := autorestart.New(autorestart.Options{
		Config: cfg,
		Sup:    sup,
		Log:    log,
		OnConfig: func(next *config.Config) {
			routes := routesFor(next, sets)
			for i, r := range routes {
				if _, ok := listeners[r.Port]; !ok {
					log.Warn("auto_restart: a new proxy port takes a reload of smoothserve (SIGHUP); until then the service is served on its old one",
						"service", r.Set.Name, "port", r.Port)
					routes[i].Port = served[r.Set.Name]
				}
			}
			if err := px.SetRoutes(routes); err != nil {
				log.Error("auto_restart: routing unchanged", "err", err)
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
