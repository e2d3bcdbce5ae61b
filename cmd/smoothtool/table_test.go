package main

import (
	"strings"
	"testing"
	"time"

	"smoothserve/control/api"
)

var now = time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return now.Add(-d) }

var fixedStatus = &api.Status{
	Pid:       4242,
	StartedAt: ago(26*time.Hour + 5*time.Minute),
	Config:    "/srv/smoothserve.yaml",
	Services: []api.ServiceStatus{
		{Name: "api", Port: 8085, State: api.ServiceStopped, Instances: []api.InstanceStatus{}},
		{
			Name: "web", Hosts: []string{"web.test", "*.web.test"}, Port: 8085, State: api.ServiceRunning,
			Instances: []api.InstanceStatus{
				{Slot: 0, Port: 8089, Pid: 5678, State: api.StateReady, Inflight: 3, Served: 12045, Restarts: 1, StartedAt: ago(2*time.Minute + 5*time.Second)},
				{Slot: 1, Port: 8087, State: api.StateBackoff, Served: 7, Restarts: 4, Error: "exit status 2"},
				{Slot: 2, Port: 8088, Pid: 1236, State: api.StateStarting, StartedAt: ago(1500 * time.Millisecond)},
			},
			LastRollout: &api.Rollout{
				Service: "web", Trigger: "smoothtool restart", StartedAt: ago(3 * time.Minute),
				FinishedAt: ago(3*time.Minute - 2100*time.Millisecond), Outcome: api.RolloutFailed,
				Error:     "web#1 not ready within 30s",
				Instances: []api.RolledInstance{{Slot: 0, OldPid: 1234, NewPid: 5678, Port: 8089, ReadyMS: 210}},
			},
		},
	},
}

func TestWriteStatus(t *testing.T) {
	var b strings.Builder
	writeStatus(&b, fixedStatus, now, false)
	want := `smoothserve pid 4242, up 1d02h, config /srv/smoothserve.yaml

api  stopped  port 8085  any host (the default service of its port)

web  running  port 8085  hosts web.test, *.web.test
  SLOT  PORT  PID   STATE     INFLIGHT  SERVED  RESTARTS  UPTIME
  0     8089  5678  ready     3         12045   1         2m05s
  1     8087  -     backoff   0         7       4         -
  2     8088  1236  starting  0         0       0         1s
  slot 1: exit status 2
  last rollout: smoothtool restart, 2025-03-04 11:57:00 (3m00s ago): failed in 2.1s, 1 replaced: web#1 not ready within 30s
`
	if got := b.String(); got != want {
		t.Errorf("status table:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteRollouts(t *testing.T) {
	rollouts := []*api.Rollout{
		{Service: "web", Instances: []api.RolledInstance{
			{Slot: 0, OldPid: 1234, NewPid: 5678, Port: 8089, ReadyMS: 210},
			{Slot: 1, OldPid: 0, NewPid: 5690, Port: 8090, ReadyMS: 1500},
		}},
		{Service: "api-internal", Instances: []api.RolledInstance{
			{Slot: 0, OldPid: 99, NewPid: 100, Port: 9001, ReadyMS: 0},
		}},
	}
	var b strings.Builder
	writeRollouts(&b, rollouts)
	want := "web#0           pid 1234 → 5678  :8089  ready in 210ms\n" +
		"web#1           pid - → 5690     :8090  ready in 1.5s\n" +
		"api-internal#0  pid 99 → 100     :9001  ready in 0s\n"
	if got := b.String(); got != want {
		t.Errorf("rollout lines:\n%s\nwant:\n%s", got, want)
	}
}

func TestRunningRolloutAndAges(t *testing.T) {
	r := &api.Rollout{Outcome: api.RolloutRunning, StartedAt: ago(75 * time.Second)}
	if got, want := outcome(r, now), "running for 1m15s"; got != want {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"}, {999 * time.Millisecond, "0s"}, {59 * time.Second, "59s"},
		{time.Hour - time.Second, "59m59s"}, {3*time.Hour + 7*time.Minute, "3h07m"}, {49 * time.Hour, "2d01h"},
	}
	for _, tt := range tests {
		if got := age(tt.d); got != tt.want {
			t.Errorf("age(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestLogTails(t *testing.T) {
	got := logTails([]*api.Rollout{{Service: "web", LogTail: []string{"panic: boom", "exit status 2"}}, {Service: "api"}})
	want := "\nthe end of web's log:\n  panic: boom\n  exit status 2"
	if got != want {
		t.Errorf("logTails = %q, want %q", got, want)
	}
}
