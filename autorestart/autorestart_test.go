package autorestart

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/supervisor"
)

func TestSpecsWatchWhatAutoRestartServicesName(t *testing.T) {
	cfg := &config.Config{Services: []*config.Service{
		{Name: "web", Enabled: true, AutoRestart: true, ExecutablePath: "/srv/web/bin/web", File: "/etc/s/services/web.yaml",
			WatchFiles: []string{"/srv/web/bin/views"}, WatchIgnore: []string{"*.swp"}, DelayUpdateTime: 3 * time.Second},
		{Name: "manual", Enabled: true, AutoRestart: false, ExecutablePath: "/srv/m/m", File: "/etc/s/services/m.yaml"},
		{Name: "off", Enabled: false, AutoRestart: true, ExecutablePath: "/srv/o/o", File: "/etc/s/services/o.yaml"},
	}}
	specs := Specs(cfg, cfg)
	if len(specs) != 1 {
		t.Fatalf("Specs = %+v, want one for web only (manual has auto_restart off, off is disabled)", specs)
	}
	s := specs[0]
	want := []string{"/srv/web/bin/web", "/etc/s/services/web.yaml", "/srv/web/bin/views"}
	if s.Name != "web" || !slices.Equal(s.Files, want) || !slices.Equal(s.Ignore, []string{"*.swp"}) || s.Quiet != 3*time.Second {
		t.Errorf("spec = %+v, want files %v, ignore [*.swp], quiet 3s", s, want)
	}
}

// A service that runs but whose file is gone from disk, or disabled there,
// keeps its files watched: its instances run until smoothtool reload, and
// its file coming back must be seen.
func TestSpecsKeepWatchingServicesThatStillRun(t *testing.T) {
	svc := func(name string, enabled, auto bool) *config.Service {
		return &config.Service{Name: name, Enabled: enabled, AutoRestart: auto,
			ExecutablePath: "/srv/" + name + "/" + name, File: "/etc/s/services/" + name + ".yaml"}
	}
	running := &config.Config{Services: []*config.Service{
		svc("gone", true, true), svc("disabled", true, true), svc("manual", true, false), svc("kept", true, true),
	}}
	disk := &config.Config{Services: []*config.Service{
		svc("disabled", false, true), svc("manual", true, false), svc("kept", true, true), svc("added", true, true),
	}}
	var got []string
	for _, s := range Specs(disk, running) {
		got = append(got, s.Name)
		if want := "/srv/" + s.Name + "/" + s.Name; s.Files[0] != want {
			t.Errorf("spec of %s watches %q first, want its executable %s", s.Name, s.Files[0], want)
		}
	}
	slices.Sort(got)
	if want := []string{"added", "disabled", "gone", "kept"}; !slices.Equal(got, want) {
		t.Errorf("Specs watch %v, want %v (manual has auto_restart off)", got, want)
	}
}

// fakeApplier records the rollouts asked for; the running configuration
// stays the one it starts with, as a removed service's does until reload.
type fakeApplier struct {
	running *config.Config
	applied chan string // the trigger of each Apply
}

func (f *fakeApplier) Apply(_ context.Context, svc *config.Service, trigger string) (*supervisor.Rollout, error) {
	f.applied <- trigger
	now := time.Now()
	return &supervisor.Rollout{Service: svc.Name, Trigger: trigger, StartedAt: now, FinishedAt: now, Outcome: supervisor.RolloutOK}, nil
}

func (f *fakeApplier) Running() *config.Config { return f.running }

const quiet = 300 * time.Millisecond // delay_update_time in these tests

// startDeployer writes a configuration with one auto_restart service "app"
// in dir and runs a Deployer on it for the rest of the test.
func startDeployer(t *testing.T, dir string) (*fakeApplier, string) {
	t.Helper()
	exe := filepath.Join(dir, "app", "app")
	writeFile(t, exe, "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(dir, "smoothserve.yaml"), "ProxyPort: 42080\nSubConfigDir: ./services\n", 0o644)
	yaml := filepath.Join(dir, "services", "app.yaml")
	writeFile(t, yaml, fmt.Sprintf("name: app\nstart_instance_port: 42081\ninstance_count: 1\nexecutable_path: ./app/app\n"+
		"auto_restart: true\ndelay_update_time: %v\n", quiet.Seconds()), 0o644)
	cfg, err := config.Load(filepath.Join(dir, "smoothserve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeApplier{running: cfg, applied: make(chan string, 10)}
	d, err := New(Options{Config: cfg, Apply: f, Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s of cancel")
		}
	})
	time.Sleep(100 * time.Millisecond) // Run has its watches in place
	return f, yaml
}

func TestServiceFileBackAfterAWhileRollsOutAgain(t *testing.T) {
	dir := t.TempDir()
	f, yaml := startDeployer(t, dir)
	data, err := os.ReadFile(yaml)
	if err != nil {
		t.Fatal(err)
	}

	// Gone for longer than delay_update_time (a checkout of another
	// branch, an rsync --delete): nothing to roll out.
	if err := os.Remove(yaml); err != nil {
		t.Fatal(err)
	}
	expectNoApply(t, f, 4*quiet)

	// Back, unchanged: a change like any other.
	writeFile(t, yaml, string(data), 0o644)
	if got := expectApply(t, f); got != yaml {
		t.Errorf("rollout triggered by %q, want the service's file %s", got, yaml)
	}
	expectNoApply(t, f, 3*quiet)

	// And the service is watched as before: a new binary rolls it out.
	exe := filepath.Join(dir, "app", "app")
	writeFile(t, exe+".new", "#!/bin/sh\n# v2\n", 0o755)
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	if got := expectApply(t, f); got != exe {
		t.Errorf("rollout triggered by %q, want the executable %s", got, exe)
	}
}

func TestServiceDisabledThenEnabledRollsOut(t *testing.T) {
	dir := t.TempDir()
	f, yaml := startDeployer(t, dir)
	data, err := os.ReadFile(yaml)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, yaml, string(data)+"enabled: false\n", 0o644)
	expectNoApply(t, f, 4*quiet)
	writeFile(t, yaml, string(data), 0o644)
	if got := expectApply(t, f); got != yaml {
		t.Errorf("rollout triggered by %q, want the service's file %s", got, yaml)
	}
}

// A new binary that comes while another service's file is invalid (a
// typo, an edit half done) rolls out once that file is fixed: the deploy
// waits for a valid configuration, it is not lost.
func TestAChangeMetByAnInvalidConfigurationRollsOutOnceItIsValid(t *testing.T) {
	defer func(first, most time.Duration) { retryFirst, retryMost = first, most }(retryFirst, retryMost)
	retryFirst, retryMost = 100*time.Millisecond, 400*time.Millisecond
	dir := t.TempDir()
	f, _ := startDeployer(t, dir)
	other := filepath.Join(dir, "services", "other.yaml")
	good := "name: other\nserver_name: other.local\nstart_instance_port: 42090\ninstance_count: 1\nexecutable_path: ./app/app\n"
	writeFile(t, other, good+"instance_cout: 3\n", 0o644)

	exe := filepath.Join(dir, "app", "app")
	writeFile(t, exe+".new", "#!/bin/sh\n# v2\n", 0o755)
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	expectNoApply(t, f, 6*quiet) // other.yaml is invalid: nothing changes

	writeFile(t, other, good, 0o644)
	if got := expectApply(t, f); got != exe {
		t.Errorf("rollout triggered by %q, want the executable %s", got, exe)
	}
	expectNoApply(t, f, 3*quiet) // once
}

func expectApply(t *testing.T, f *fakeApplier) string {
	t.Helper()
	select {
	case trigger := <-f.applied:
		return trigger
	case <-time.After(5 * time.Second):
		t.Fatal("no rollout within 5s")
	}
	return ""
}

func expectNoApply(t *testing.T, f *fakeApplier, d time.Duration) {
	t.Helper()
	select {
	case trigger := <-f.applied:
		t.Fatalf("unexpected rollout, triggered by %q", trigger)
	case <-time.After(d):
	}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}
