package admin

import (
	"slices"
	"testing"
	"time"

	"smoothserve/control/api"
)

func TestRedactPaths(t *testing.T) {
	for in, want := range map[string]string{
		"":                                     "",
		"smoothtool restart":                   "smoothtool restart",
		"/srv/app/bin/web":                     "…/web",
		"fork/exec /srv/app/bin/web: denied":   "fork/exec …/web: denied",
		`exec: "/opt/x/run.sh": not found`:     `exec: "…/run.sh": not found`,
		"changed /srv/app/static/.":            "changed …/static.",
		"GET http://127.0.0.1:8086/a/b/health": "GET http://127.0.0.1:8086/a/b/health",
		"health check /healthz: 500":           "health check /healthz: 500",
		"dirs (/a/b, /c/d/e)":                  "dirs (…/b, …/e)",
		"PATH=/usr/bin:/bin":                   "PATH=…/bin:/bin",
	} {
		if got := redactPaths(in); got != want {
			t.Errorf("redactPaths(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInstanceUsage(t *testing.T) {
	now := time.Now()
	sv := newServiceView(api.ServiceStatus{Instances: []api.InstanceStatus{
		{Pid: 12, CPUPercent: 212.5, RSSBytes: 3 << 30},
		{Pid: 13, RSSBytes: 512}, // idle: no cpu_percent
		{Pid: 14},                // not measured
		{},                       // no process
	}}, now)
	if !sv.Usage {
		t.Errorf("a service with measured instances has no usage columns")
	}
	var got []string
	for _, iv := range sv.Instances {
		got = append(got, iv.CPU+" "+iv.Memory)
	}
	if want := []string{"212.5% 3.0 GiB", "0.0% 512 B", "- -", "- -"}; !slices.Equal(got, want) {
		t.Errorf("CPU and memory = %q, want %q", got, want)
	}
	if sv := newServiceView(api.ServiceStatus{Instances: []api.InstanceStatus{{Pid: 12}}}, now); sv.Usage {
		t.Errorf("a service with no instance measured has usage columns")
	}
}

func TestFmtBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 50 << 20: "50.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                      "0s",
		850 * time.Millisecond:            "850ms",
		2100 * time.Millisecond:           "2.1s",
		42 * time.Second:                  "42s",
		3*time.Minute + 5*time.Second:     "3m05s",
		2*time.Hour + 7*time.Minute:       "2h07m",
		76*time.Hour + 30*time.Minute:     "3d04h",
		24*time.Hour - time.Nanosecond:    "23h59m",
		time.Hour + 59*time.Second:        "1h00m",
		10*time.Second - time.Millisecond: "10.0s",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
