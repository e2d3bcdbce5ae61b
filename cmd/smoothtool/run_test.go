package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"smoothserve/control"
	"smoothserve/control/api"
	"smoothserve/control/client"
)

// install writes smoothserve.yaml, with its control socket in a short
// folder (a socket path may have 107 bytes), and a broken service file.
func install(t *testing.T) (config, socket string) {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "st")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket = filepath.Join(sockDir, "s.sock")
	config = filepath.Join(dir, "smoothserve.yaml")
	write(t, config, fmt.Sprintf("ProxyPort: 8085\nControlSocket: %s\n", socket))
	write(t, filepath.Join(dir, "services", "web.yaml"), "name: web\ninstance_cout: 3\n")
	return config, socket
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runTool(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// fakeDaemon answers with its status and records what it is asked.
type fakeDaemon struct {
	status *api.Status // set before it serves
	mu     sync.Mutex
	calls  []string
}

func (f *fakeDaemon) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeDaemon) Status() api.Status { return *f.status }

func (f *fakeDaemon) BriefStatus() api.Status { return *f.status }

func (f *fakeDaemon) Restart(ctx context.Context, name, trigger string) ([]*api.Rollout, error) {
	f.record("restart " + name)
	return []*api.Rollout{{Service: "web", Outcome: api.RolloutFailed, LogTail: []string{"panic: boom"},
			Instances: []api.RolledInstance{{Slot: 0, OldPid: 1, NewPid: 2, Port: 8089, ReadyMS: 5}}}},
		errors.New("web#1 not ready: rollout failed")
}

func (f *fakeDaemon) StopService(ctx context.Context, name string) error {
	f.record("stop " + name)
	return fmt.Errorf("%w: %s", api.ErrUnknownService, name)
}

func (f *fakeDaemon) StartService(ctx context.Context, name string) error {
	f.record("start " + name)
	if name == "nope" {
		return fmt.Errorf("%w: %s", api.ErrUnknownService, name)
	}
	return nil
}

func (f *fakeDaemon) Shutdown(force bool) {}

func (f *fakeDaemon) Upgrade(ctx context.Context) (int, error) {
	f.record("upgrade")
	return 4343, nil
}

func (f *fakeDaemon) Reload(ctx context.Context) (*api.ReloadResult, error) {
	f.record("reload")
	return &api.ReloadResult{Services: []api.ServiceChange{
		{Name: "web", Change: api.ChangeRolled}, {Name: "api", Change: api.ChangeAdded, Error: "not ready"},
	}}, nil
}

func (f *fakeDaemon) Drain(ctx context.Context, wait bool, timeout time.Duration) (api.HostStatus, error) {
	f.record(fmt.Sprintf("drain wait=%v timeout=%v", wait, timeout))
	if wait {
		return api.HostStatus{State: api.HostDrained, ClosedConnections: 3, Served: 120}, nil
	}
	return api.HostStatus{State: api.HostDraining}, nil
}

func (f *fakeDaemon) Undrain() api.HostStatus {
	f.record("undrain")
	return api.HostStatus{State: api.HostServing}
}

func (f *fakeDaemon) DrainInstance(ctx context.Context, name string, slot int, force bool) error {
	f.record(fmt.Sprintf("drain %s#%d force=%v", name, slot, force))
	if name == "web" && slot == 9 {
		return fmt.Errorf("%w web#9: web has slots 0 to 1", api.ErrUnknownInstance)
	}
	return nil
}

func (f *fakeDaemon) UndrainInstance(ctx context.Context, name string, slot int) error {
	f.record(fmt.Sprintf("undrain %s#%d", name, slot))
	return nil
}

// serveFake serves a fakeDaemon with fixedStatus.
func serveFake(t *testing.T, socket string) *fakeDaemon {
	t.Helper()
	return serveFakeStatus(t, socket, fixedStatus)
}

func serveFakeStatus(t *testing.T, socket string, st *api.Status) *fakeDaemon {
	t.Helper()
	ln, err := control.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{status: st}
	srv := control.NewServer(d, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return d
}

func TestNoDaemon(t *testing.T) {
	config, socket := install(t)
	for _, args := range [][]string{{"status"}, {"-stop", "all"}, {"restart", "web"}, {"stop", "web"}} {
		code, out, errOut := runTool(append(args, "-config", config)...)
		want := "smoothtool: smoothserve is not running: no control socket at " + socket
		if code != 1 || !strings.Contains(errOut, want) || out != "" {
			t.Errorf("%q without a daemon: exit %d, stdout %q, stderr %q; want 1 and %q", args, code, out, errOut, want)
		}
	}
}

// An upgrade without a daemon says that smoothserve is not running, as
// every command does, and how to start it; not that an upgrade failed and
// the running smoothserve goes on serving.
func TestUpgradeWithoutDaemon(t *testing.T) {
	config, socket := install(t)
	for _, args := range [][]string{{"upgrade"}, {"-upgrade"}} {
		code, out, errOut := runTool(append(args, "-c", config)...)
		want := "smoothtool: smoothserve is not running: no control socket at " + socket + "; nothing to upgrade: smoothtool start starts it\n"
		if code != 1 || out != "" || errOut != want {
			t.Errorf("%q without a daemon: exit %d, stdout %q, stderr %q; want 1 and %q", args, code, out, errOut, want)
		}
	}
}

func TestStartWithoutDaemonReportsConfigErrors(t *testing.T) {
	config, _ := install(t)
	code, _, errOut := runTool("-start", "all", "-c", config)
	if code != 1 || !strings.Contains(errOut, "configuration is invalid") || !strings.Contains(errOut, "web.yaml:2: instance_cout: unknown key") {
		t.Errorf("start with a broken service file: exit %d, stderr %q", code, errOut)
	}
}

func TestBrokenMainFile(t *testing.T) {
	config, _ := install(t)
	write(t, config, "ProxyPort: [\n")
	code, _, errOut := runTool("status", "-c", config)
	if code != 1 || !strings.Contains(errOut, "smoothtool: configuration is invalid:\n"+config+":") {
		t.Errorf("status with a broken smoothserve.yaml: exit %d, stderr %q", code, errOut)
	}
}

// A broken service file must not keep an operator from the daemon.
func TestDaemonReachedDespiteBrokenServiceFile(t *testing.T) {
	config, socket := install(t)
	d := serveFake(t, socket)

	code, out, errOut := runTool("status", "-c", config)
	if code != 0 || !strings.Contains(out, "smoothserve pid 4242") || !strings.Contains(out, "web  running  port 8085") {
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	raw, err := client.Dial(socket).StatusJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runTool("status", "--json", "-c", config); code != 0 || out != string(raw) || !strings.HasSuffix(out, "}\n") {
		t.Errorf("status --json: exit %d, stdout %q, want the daemon's JSON %q", code, out, raw)
	}

	code, out, errOut = runTool("restart", "web", "-c", config)
	if code != 1 || out != "web#0  pid 1 → 2  :8089  ready in 5ms\n" ||
		errOut != "smoothtool: restarting web: web#1 not ready: rollout failed\nthe end of web's log:\n  panic: boom\n" {
		t.Errorf("failed restart: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	code, _, errOut = runTool("stop", "nope", "-c", config)
	if code != 1 || errOut != "smoothtool: stopping nope: unknown service: nope\n" {
		t.Errorf("stop of an unknown service: exit %d, stderr %q", code, errOut)
	}

	code, out, errOut = runTool("start", "nope", "-c", config)
	if code != 1 || out != "" || !strings.Contains(errOut, "unknown service") {
		t.Errorf("start of an unknown service: exit %d, stdout %q (want none: nothing started), stderr %q", code, out, errOut)
	}

	code, out, _ = runTool("-start", "web", "-c", config)
	if code != 0 || !strings.Contains(out, "smoothserve pid 4242") {
		t.Errorf("start web with a daemon: exit %d, stdout %q", code, out)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got, want := strings.Join(d.calls, ", "), "restart web, stop nope, start nope, start web"; got != want {
		t.Errorf("daemon was asked %q, want %q", got, want)
	}
}

// An invalid smoothserve.yaml does not keep an operator from the running
// daemon either: smoothtool warns, naming FILE:LINE and the problem, and
// goes on. A start that would run a daemon with it refuses, saying why once.
func TestDaemonReachedDespiteInvalidMainFile(t *testing.T) {
	config, socket := install(t)
	write(t, config, fmt.Sprintf("ProxyPort: 8085\nControlSocket: %s\nProxyPrt: 5\n", socket))
	problem := config + ":3: ProxyPrt: unknown key (did you mean ProxyPort?)"

	code, _, errOut := runTool("start", "-c", config)
	if code != 1 || !strings.HasPrefix(errOut, "smoothtool: configuration is invalid:\n") ||
		!strings.Contains(errOut, problem) || strings.Count(errOut, "ProxyPrt") != 1 {
		t.Errorf("start without a daemon: exit %d, stderr %q; want 1, the configuration's errors once", code, errOut)
	}

	d := serveFake(t, socket)
	warning := "smoothtool: warning: " + config + " is invalid"
	for _, args := range [][]string{{"status"}, {"drain"}, {"start", "web"}, {"stop", "nope"}} {
		code, out, errOut := runTool(append(args, "-c", config)...)
		wantCode := 0
		if args[0] == "stop" {
			wantCode = 1 // the fake knows no service nope: reached all the same
		}
		if code != wantCode || !strings.HasPrefix(errOut, warning) || !strings.Contains(errOut, "\n  "+problem+"\n") {
			t.Errorf("%q with an invalid smoothserve.yaml: exit %d, stdout %q, stderr %q; want %d after a warning naming %q",
				args, code, out, errOut, wantCode, problem)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got, want := strings.Join(d.calls, ", "), "drain wait=false timeout=0s, start web, stop nope"; got != want {
		t.Errorf("daemon was asked %q, want %q", got, want)
	}
}

func TestReloadPrintsEachServicesChange(t *testing.T) {
	config, socket := install(t)
	serveFake(t, socket)
	code, out, errOut := runTool("reload", "-c", config)
	if code != 1 || out != "web  rolled\napi  added, but: not ready\n" ||
		errOut != "smoothtool: reload: 1 of 2 services not as their files say\n" {
		t.Errorf("reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// drain and undrain, of the host and of one instance, reach the daemon as
// asked and say what happened.
func TestDrainCommands(t *testing.T) {
	config, socket := install(t)
	d := serveFake(t, socket)
	tests := []struct {
		args     []string
		code     int
		out, err string
		call     string
	}{
		{[]string{"drain"}, 0, "host draining since", "", "drain wait=false timeout=0s"},
		{[]string{"drain", "--wait", "--timeout", "1m"}, 0, "host drained (no request in flight) after", "smoothtool: draining; waiting", "drain wait=true timeout=1m0s"},
		{[]string{"undrain"}, 0, "host serving: /health answers 200", "", "undrain"},
		{[]string{"drain", "web#1", "--force"}, 0, "web#1 out of rotation; it keeps running", "", "drain web#1 force=true"},
		{[]string{"undrain", "web#0"}, 0, "web#0 back in rotation", "", "undrain web#0"},
		{[]string{"drain", "web#9"}, 1, "", "smoothtool: drain web#9: unknown instance web#9: web has slots 0 to 1", "drain web#9 force=false"},
	}
	for _, tt := range tests {
		d.mu.Lock()
		d.calls = nil
		d.mu.Unlock()
		code, out, errOut := runTool(append(tt.args, "-c", config)...)
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, out, errOut, tt.code, tt.out, tt.err)
		}
		d.mu.Lock()
		if !slices.Contains(d.calls, tt.call) {
			t.Errorf("%q: calls %q, want %q", tt.args, d.calls, tt.call)
		}
		d.mu.Unlock()
	}
}
