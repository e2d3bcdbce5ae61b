package supervisor

import (
	"fmt"
	"time"

	"smoothserve/upstream"
)

// State is where one slot's instance is in its lifetime.
type State int

// The states of a slot. Their String forms are part of the control API.
const (
	StateStarting State = iota // process started, not ready yet: takes no traffic
	StateReady                 // in rotation
	StateDraining              // out of rotation, waiting for requests in flight
	StateStopping              // signalled, waiting for the process to exit
	StateBackoff               // no process: waiting to start again after a failure
)

var stateNames = [...]string{
	StateStarting: "starting",
	StateReady:    "ready",
	StateDraining: "draining",
	StateStopping: "stopping",
	StateBackoff:  "backoff",
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

// UnmarshalText reads a State from its name, for clients of the control API.
func (s *State) UnmarshalText(b []byte) error {
	for i, name := range stateNames {
		if name == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown instance state %q", b)
}

// Service states in ServiceStatus.State.
const (
	ServiceRunning  = "running"  // its instances are kept up
	ServiceStopping = "stopping" // its instances are being drained and stopped
	ServiceStopped  = "stopped"  // disabled, or the supervisor is not running
)

// ServiceStatus is one service as Status reports it.
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
	Slot      int       `json:"slot"`
	Port      int       `json:"port"`
	Pid       int       `json:"pid"` // 0 while no process runs (backoff)
	State     State     `json:"state"`
	Inflight  int64     `json:"inflight"`
	Served    uint64    `json:"served"`   // across every process lifetime of the slot
	Restarts  int       `json:"restarts"` // processes started for the slot after the first
	StartedAt time.Time `json:"started_at,omitzero"`
	Error     string    `json:"error,omitempty"` // why the last start failed or the process was lost, until ready again
}

// serviceSnapshot is what Status shows of one service. Its service's run
// goroutine builds a new one on every change and never modifies a published
// one; readers load it without locking.
type serviceSnapshot struct {
	state       string
	wanted      bool // to be running: not stopped by the operator, smoothserve not stopping
	slots       []slotSnapshot
	lastRollout *Rollout
}

type slotSnapshot struct {
	InstanceStatus                   // without Inflight and Served, read live
	backend        *upstream.Backend // current process's backend, nil before ready
	servedBefore   uint64            // served by the slot's earlier processes
	ident          identity          // the process's identity, once known
	fingerprint    string            // the process's settings (instance.fingerprint)
	err            error             // in backoff: what Error says, for errors.Is
}

// Status reports every service (disabled ones too), in configuration order.
func (s *Supervisor) Status() []ServiceStatus {
	out := make([]ServiceStatus, 0, len(s.services))
	for _, sv := range s.services {
		snap := sv.snap.Load()
		st := ServiceStatus{
			Name:      sv.cfg().Name,
			Hosts:     append([]string{}, sv.cfg().ServerNames...),
			Port:      sv.cfg().Port,
			State:     snap.state,
			Instances: make([]InstanceStatus, 0, len(snap.slots)),
		}
		if snap.lastRollout != nil {
			r := *snap.lastRollout
			st.LastRollout = &r
		}
		for _, sl := range snap.slots {
			is := sl.InstanceStatus
			is.Served = sl.servedBefore
			if sl.backend != nil {
				is.Inflight = sl.backend.Inflight()
				is.Served += sl.backend.Served()
			}
			st.Instances = append(st.Instances, is)
		}
		out = append(out, st)
	}
	return out
}
