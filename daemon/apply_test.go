package daemon

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/proxy"
	"smoothserve/upstream"
)

// running is a Daemon with the running configuration cfg and a proxy
// routing it, as New makes one, without listeners or instances.
func running(t *testing.T, cfg *config.Config) *Daemon {
	t.Helper()
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), sets: map[string]*upstream.Set{}, applying: map[string]*sync.Mutex{}}
	for _, svc := range cfg.Services {
		d.sets[svc.Name] = upstream.NewSet(svc.Name, time.Second)
	}
	px, err := proxy.New(proxy.Options{}, routesFor(cfg, d.sets, nil))
	if err != nil {
		t.Fatal(err)
	}
	d.px = px
	d.cfg.Store(cfg)
	return d
}

func TestStopDeadlineFollowsTheRunningConfiguration(t *testing.T) {
	web := &config.Service{Name: "web", Enabled: true, Port: 8080, StopTimeout: 5 * time.Second}
	api := &config.Service{Name: "api", Enabled: true, Port: 8081, StopTimeout: 40 * time.Second}
	d := running(t, &config.Config{Services: []*config.Service{web, api}})
	if got := d.stopDeadline(); got != 40*time.Second {
		t.Fatalf("stop deadline at start = %v, want 40s (api's stop_timeout)", got)
	}
	longer := *web
	longer.StopTimeout = 90 * time.Second
	if err := d.setRunning(&longer); err != nil {
		t.Fatal(err)
	}
	if got := d.stopDeadline(); got != 90*time.Second {
		t.Errorf("stop deadline after web's stop_timeout became 90s = %v, want 90s", got)
	}
	if got := d.config().Service("api"); got != api {
		t.Errorf("applying web replaced api's settings: %+v", got)
	}
}

func TestSetRunningRoutesTheNewHostsAndRefusesInvalidRoutes(t *testing.T) {
	web := &config.Service{Name: "web", Enabled: true, Port: 8080, ServerNames: []string{"web.test"}}
	api := &config.Service{Name: "api", Enabled: true, Port: 8080, ServerNames: []string{"api.test"}}
	d := running(t, &config.Config{Services: []*config.Service{web, api}})
	both := *web
	both.ServerNames = nil // web becomes the default of port 8080: valid
	if err := d.setRunning(&both); err != nil {
		t.Fatalf("web as the default of its port: %v", err)
	}
	apiDefault := *api
	apiDefault.ServerNames = nil // now two defaults on 8080
	if err := d.setRunning(&apiDefault); err == nil {
		t.Errorf("setRunning took a second default service on port 8080")
	}
	if got := d.config().Service("api"); got != api {
		t.Errorf("a refused change replaced api's running settings: %+v", got)
	}
}
