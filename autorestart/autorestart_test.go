package autorestart

import (
	"slices"
	"testing"
	"time"

	"smoothserve/config"
)

func TestSpecsWatchWhatAutoRestartServicesName(t *testing.T) {
	cfg := &config.Config{Services: []*config.Service{
		{Name: "web", Enabled: true, AutoRestart: true, ExecutablePath: "/srv/web/bin/web", File: "/etc/s/services/web.yaml",
			WatchFiles: []string{"/srv/web/bin/views"}, WatchIgnore: []string{"*.swp"}, DelayUpdateTime: 3 * time.Second},
		{Name: "manual", Enabled: true, AutoRestart: false, ExecutablePath: "/srv/m/m", File: "/etc/s/services/m.yaml"},
		{Name: "off", Enabled: false, AutoRestart: true, ExecutablePath: "/srv/o/o", File: "/etc/s/services/o.yaml"},
	}}
	specs := Specs(cfg)
	if len(specs) != 1 {
		t.Fatalf("Specs = %+v, want one for web only (manual has auto_restart off, off is disabled)", specs)
	}
	s := specs[0]
	want := []string{"/srv/web/bin/web", "/etc/s/services/web.yaml", "/srv/web/bin/views"}
	if s.Name != "web" || !slices.Equal(s.Files, want) || !slices.Equal(s.Ignore, []string{"*.swp"}) || s.Quiet != 3*time.Second {
		t.Errorf("spec = %+v, want files %v, ignore [*.swp], quiet 3s", s, want)
	}
}
