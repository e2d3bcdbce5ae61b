// Package api holds what crosses smoothserve's control socket: the status
// of the daemon, its services and their instances, rollouts, the result of
// an upgrade, and the errors the API reports by status code. The
// supervisor produces these values and smoothtool reads them; the package
// imports nothing of smoothserve, so that a client links these types and
// not the daemon.
//
// The JSON of these types is a contract: operators script against
// `smoothtool status --json` (README). Fields may be added, never renamed.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors the API reports as 404 and 409, for errors.Is on both sides of
// the socket.
var (
	ErrUnknownService = errors.New("unknown service")
	ErrDisabled       = errors.New("service is disabled")
	// ErrUnknownInstance: a NAME#SLOT naming no slot of the service (404).
	ErrUnknownInstance = errors.New("unknown instance")
	// ErrLastInstance: draining the instance would leave its service
	// with none in rotation (409; --force does it anyway).
	ErrLastInstance = errors.New("the last instance of its service in rotation")
	// ErrNotAnswering: an instance to put back in rotation fails its
	// readiness check (409): it stays out.
	ErrNotAnswering = errors.New("does not answer its readiness check")
)

// PortInUse is in InstanceStatus.Error when the instance cannot start
// because another process listens on its port: waiting will not make it
// ready. It is supervisor.ErrPortInUse's text.
const PortInUse = "in use by another process"

// Status is the daemon as GET /v1/status reports it.
type Status struct {
	Pid       int             `json:"pid"`
	StartedAt time.Time       `json:"started_at"`
	Config    string          `json:"config"`
	Services  []ServiceStatus `json:"services"`
	Host      HostStatus      `json:"host"`
}

// Host states in HostStatus.State: the host's place in an outer load
// balancer's rotation, which it reads from GET /health on AdminAddr.
const (
	HostServing  = "serving"  // /health: 200
	HostDraining = "draining" // /health: 503; requests still served; once DrainDelay passed, connections are closed after their response
	HostDrained  = "drained"  // draining, and no request in flight after DrainDelay (or the drain's timeout passed)
)

// HostStatus is the host's drain (smoothtool drain, undrain).
type HostStatus struct {
	State string `json:"state"` // one of the Host* values
	// DrainSince is when the drain began; Closing, whether DrainDelay has
	// passed since (responses carry Connection: close, idle connections
	// are closed); DrainedAt, when the host became drained.
	DrainSince time.Time `json:"drain_since,omitzero"`
	Closing    bool      `json:"closing,omitempty"`
	DrainedAt  time.Time `json:"drained_at,omitzero"`
	// TimedOut: the host was declared drained when the drain's timeout
	// passed, with requests still in flight.
	TimedOut bool  `json:"timed_out,omitempty"`
	InFlight int64 `json:"in_flight"` // requests being answered now
	// ClosedConnections and Served count, since the drain began (in this
	// smoothserve process: an upgrade starts them over), the client
	// connections closed to send their clients elsewhere and the requests
	// answered.
	ClosedConnections int64  `json:"closed_connections,omitempty"`
	Served            uint64 `json:"served,omitempty"`
}

// Service states in ServiceStatus.State.
const (
	ServiceRunning  = "running"  // its instances are kept up
	ServiceStopping = "stopping" // its instances are being drained and stopped
	ServiceStopped  = "stopped"  // disabled, or the supervisor is not running
)

// ServiceStatus is one service, disabled ones too.
type ServiceStatus struct {
	Name      string           `json:"name"`
	Hosts     []string         `json:"hosts"`
	Port      int              `json:"port"`
	State     string           `json:"state"`
	Instances []InstanceStatus `json:"instances"`
	// LastRollout is the service's last rolling restart, finished or not.
	LastRollout *Rollout `json:"last_rollout,omitempty"`
}

// InstanceStatus is one slot of a service.
type InstanceStatus struct {
	Slot     int   `json:"slot"`
	Port     int   `json:"port"`
	Pid      int   `json:"pid"` // 0 while no process runs (backoff)
	State    State `json:"state"`
	Inflight int64 `json:"inflight"`
	// Served and Restarts count over every process of the slot and go on
	// across upgrades of smoothserve, as the metrics do. Served is the
	// requests answered: during a rollout, a slot shows two rows, and the
	// slot's count is their sum. Restarts is the processes started for
	// the slot after the first: the sum of RestartReasons, which says why
	// they were ("crash", "unhealthy", "rollout", "start"), as
	// smoothserve_instance_restarts_total does.
	Served         uint64         `json:"served"`
	Restarts       int            `json:"restarts"`
	RestartReasons map[string]int `json:"restart_reasons,omitempty"`
	StartedAt      time.Time      `json:"started_at,omitzero"`
	Error          string         `json:"error,omitempty"` // why the last start failed or the process was lost, until ready again
	// CPUPercent and RSSBytes are the use of the instance's process group
	// (the process and the workers it forked), measured by the daemon when
	// the status is asked: CPU in percent of one CPU since the sample
	// before (a few seconds at most), rounded to a tenth; resident memory
	// in bytes, summed over the group. Both are absent when not measured
	// (no process, or /proc unreadable).
	CPUPercent float64 `json:"cpu_percent,omitempty"`
	RSSBytes   int64   `json:"rss_bytes,omitempty"`
}

// MarshalJSON writes cpu_percent whenever the instance was measured (it
// has rss_bytes), 0.0 for an idle one included; omitempty alone would
// leave it out there, as if not measured.
func (in InstanceStatus) MarshalJSON() ([]byte, error) {
	type plain InstanceStatus // without this method
	out := struct {
		plain
		CPU *float64 `json:"cpu_percent,omitempty"` // hides plain's
	}{plain: plain(in)}
	if in.RSSBytes > 0 {
		out.CPU = &in.CPUPercent
	}
	return json.Marshal(out)
}

// State is where one slot's instance is in its lifetime. In JSON it is its
// name.
type State int

// The states of a slot.
const (
	StateStarting  State = iota // process started, not ready yet: takes no traffic
	StateReady                  // in rotation
	StateDraining               // out of rotation, waiting for requests in flight
	StateStopping               // signalled, waiting for the process to exit
	StateBackoff                // no process: waiting to start again after a failure
	StateUnhealthy              // running, failing its health check: out of rotation unless every instance of the service is
	StateDrained                // running and ready, out of rotation as the operator asked (smoothtool drain NAME#SLOT)
)

var stateNames = [...]string{
	StateStarting:  "starting",
	StateReady:     "ready",
	StateDraining:  "draining",
	StateStopping:  "stopping",
	StateBackoff:   "backoff",
	StateUnhealthy: "unhealthy",
	StateDrained:   "drained",
}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText makes a State its name in JSON.
func (s State) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(stateNames) {
		return nil, fmt.Errorf("invalid instance state %d", int(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText reads a State from its name.
func (s *State) UnmarshalText(b []byte) error {
	for i, name := range stateNames {
		if name == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown instance state %q", b)
}

// Age is a duration as an operator reads an uptime: its two largest units
// (45s, 3m05s, 2h07m, 3d04h).
func Age(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// Rollout outcomes.
const (
	RolloutRunning = "running"
	RolloutOK      = "ok"
	RolloutFailed  = "failed"  // a replacement did not become ready: the instances not yet replaced keep serving
	RolloutAborted = "aborted" // the service or smoothserve was stopped during it
	RolloutKept    = "kept"    // the service is stopped (smoothtool stop): nothing ran to roll; its new settings run at its start
)

// Rollout is one rolling restart of a service, as a service's status and a
// restart report it.
type Rollout struct {
	Service    string           `json:"service"`
	Trigger    string           `json:"trigger"`  // what asked for it: "smoothtool restart", or the changed path
	Strategy   string           `json:"strategy"` // surge or in_place
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt time.Time        `json:"finished_at,omitzero"`
	Outcome    string           `json:"outcome"`
	Error      string           `json:"error,omitempty"`
	LogTail    []string         `json:"log_tail,omitempty"` // the service log's last lines, when a replacement failed
	Instances  []RolledInstance `json:"instances"`          // one per slot replaced, in order
}

// RolledInstance is one slot replaced by a rollout.
type RolledInstance struct {
	Slot    int   `json:"slot"`
	OldPid  int   `json:"old_pid"` // 0 when the slot had no running process
	NewPid  int   `json:"new_pid"`
	Port    int   `json:"port"`     // the new instance's port
	ReadyMS int64 `json:"ready_ms"` // from its start until it was ready
}

// UpgradeResult is a successful upgrade's response.
type UpgradeResult struct {
	OldPid int `json:"old_pid"`
	NewPid int `json:"new_pid"`
}

// ReloadResult is a reload's response: what happened to each service of
// the configuration on disk, and to each one no longer in it.
type ReloadResult struct {
	Services []ServiceChange `json:"services"`
}

// ServiceChange is what a reload did to one service.
type ServiceChange struct {
	Name   string `json:"name"`
	Change string `json:"change"`          // one of the Change* values
	Error  string `json:"error,omitempty"` // why it did not (fully) happen
}

// What a reload did to a service.
const (
	ChangeAdded     = "added"     // new file: started
	ChangeRemoved   = "removed"   // file gone: stopped
	ChangeRolled    = "rolled"    // settings changed: rolled onto them
	ChangeUpdated   = "updated"   // settings changed that no instance runs with (hosts, TLS, the proxy's limits): applied without a restart
	ChangeEnabled   = "enabled"   // enabled: true now: started
	ChangeDisabled  = "disabled"  // enabled: false now: stopped
	ChangeUnchanged = "unchanged" // same settings: untouched
	ChangeKept      = "kept"      // settings changed, but nothing runs (disabled, or stopped with smoothtool stop): they run at its start
)

// ErrorBody is every error answer; Rollouts is set by a failed restart.
type ErrorBody struct {
	Error    string     `json:"error"`
	Rollouts []*Rollout `json:"rollouts,omitempty"`
}

// RestartBody is a successful restart's answer.
type RestartBody struct {
	Rollouts []*Rollout `json:"rollouts"`
}

// EndOfLog shows the last lines of service's log below an error; nothing
// when there are none.
func EndOfLog(service string, lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return fmt.Sprintf("\nthe end of %s's log:\n  %s", service, strings.Join(lines, "\n  "))
}
