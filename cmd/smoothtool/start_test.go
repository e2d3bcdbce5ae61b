package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smoothserve/config"
	"smoothserve/control/api"
)

func TestConfigError(t *testing.T) {
	dir := t.TempDir()
	_, missing := config.Load(filepath.Join(dir, "nope.yaml"))
	write(t, filepath.Join(dir, "smoothserve.yaml"), "ProxyPort: [\n")
	_, broken := config.Load(filepath.Join(dir, "smoothserve.yaml"))
	tests := []struct {
		err        error
		want       string
		unreadable bool
	}{
		{missing, filepath.Join(dir, "nope.yaml") + ": no such file", true},
		{broken, "configuration is invalid:\n" + filepath.Join(dir, "smoothserve.yaml") + ":2: ", false},
	}
	for _, tt := range tests {
		got := configError(tt.err)
		if !strings.HasPrefix(got.Error(), tt.want) {
			t.Errorf("configError(%q) = %q, want it to start %q", tt.err, got, tt.want)
		}
		var list config.ErrorList
		if !errors.As(got, &list) || errors.Is(got, config.ErrUnreadable) != tt.unreadable {
			t.Errorf("configError(%q) does not wrap it", tt.err)
		}
	}
}

func TestFailedInstance(t *testing.T) {
	status := func(services ...api.ServiceStatus) *api.Status { return &api.Status{Services: services} }
	ready := api.InstanceStatus{State: api.StateReady}
	starting := api.InstanceStatus{State: api.StateStarting}
	tests := []struct {
		name         string
		st           *api.Status
		service, why string
	}{
		{"all ready", status(api.ServiceStatus{Name: "web", Instances: []api.InstanceStatus{ready, ready}}), "", ""},
		{"still starting", status(api.ServiceStatus{Name: "web", Instances: []api.InstanceStatus{ready, starting}}), "", ""},
		{"exited at once",
			status(
				api.ServiceStatus{Name: "api", Instances: []api.InstanceStatus{ready}},
				api.ServiceStatus{Name: "web", Instances: []api.InstanceStatus{ready, {State: api.StateBackoff, Error: "pid 7 exited before it was ready: exit status 1"}}}),
			"web", "pid 7 exited before it was ready: exit status 1"},
		// Starting again after a failure: the error stays until it is ready.
		{"starting again", status(api.ServiceStatus{Name: "web", Instances: []api.InstanceStatus{{State: api.StateStarting, Error: "not ready after 1s"}}}),
			"web", "not ready after 1s"},
		{"ready again", status(api.ServiceStatus{Name: "web", Instances: []api.InstanceStatus{{State: api.StateReady}}}), "", ""},
	}
	for _, tt := range tests {
		service, why := failedInstance(tt.st)
		if service != tt.service || why != tt.why {
			t.Errorf("%s: failedInstance = %q, %q; want %q, %q", tt.name, service, why, tt.service, tt.why)
		}
	}
}

// The error shows what the instances wrote to the service's log since the
// daemon started, not what an earlier run left there.
func TestInstanceFailedShowsTheServiceLog(t *testing.T) {
	dir := t.TempDir()
	old := "web: an earlier run\n"
	write(t, filepath.Join(dir, "web.log"), old)
	f, err := os.OpenFile(filepath.Join(dir, "web.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("web: cannot open /srv/web/db: permission denied\n")
	f.Close()
	d := &spawned{pid: 42, logPath: filepath.Join(dir, "smoothserve.log"), logDir: dir, serviceLogFrom: map[string]int64{"web": int64(len(old))}}

	got := d.instanceFailed("web", "starting instance web#0 on :9000: pid 7 exited before it was ready: exit status 1").Error()
	want := "smoothserve (pid 42) is running, but an instance of web cannot start (starting instance web#0 on :9000: pid 7 exited before it was ready: exit status 1); " +
		"it tries again with backoff (or `smoothtool stop`); see " + d.logPath +
		"\nthe end of web's log:\n  web: cannot open /srv/web/db: permission denied"
	if got != want {
		t.Errorf("instanceFailed =\n%s\nwant\n%s", got, want)
	}

	got = d.instanceFailed("api", "starting instance api#0 on :9100: port 9100 is "+api.PortInUse).Error()
	want = "smoothserve (pid 42) is running, but an instance of api cannot start (starting instance api#0 on :9100: port 9100 is " + api.PortInUse + "); " +
		"it tries again with backoff until the port is free (or `smoothtool stop`); see " + d.logPath
	if got != want {
		t.Errorf("instanceFailed with no log =\n%s\nwant\n%s", got, want)
	}
}
