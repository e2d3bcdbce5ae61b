package supervisor

import (
	"smoothserve/control/api"
	"smoothserve/handoff"
)

// What Status reports is the control API's (package api): the supervisor
// produces those values, and smoothtool reads them without linking the
// supervisor. A slot's State is the one its status shows.
type (
	State          = api.State
	ServiceStatus  = api.ServiceStatus
	InstanceStatus = api.InstanceStatus
)

// The states of a slot.
const (
	StateStarting = api.StateStarting // process started, not ready yet: takes no traffic
	StateReady    = api.StateReady    // in rotation
	StateDraining = api.StateDraining // out of rotation, waiting for requests in flight
	StateStopping = api.StateStopping // signalled, waiting for the process to exit
	StateBackoff  = api.StateBackoff  // no process: waiting to start again after a failure
	// StateUnhealthy: ready once, now failing its health check: out of
	// rotation while another instance of the service is in it.
	StateUnhealthy = api.StateUnhealthy
	// StateDrained: ready, out of rotation as the operator asked (drain.go).
	StateDrained = api.StateDrained
)

// Service states in ServiceStatus.State.
const (
	ServiceRunning  = api.ServiceRunning  // its instances are kept up
	ServiceStopping = api.ServiceStopping // its instances are being drained and stopped
	ServiceStopped  = api.ServiceStopped  // disabled, or the supervisor is not running
)

// serviceSnapshot is what Status shows of one service. Its service's run
// goroutine builds a new one on every change and never modifies a published
// one; readers load it without locking.
type serviceSnapshot struct {
	state       string
	wanted      bool // to be running: not stopped by the operator, smoothserve not stopping
	slots       []slotSnapshot
	lastRollout *Rollout
	drained     []int // the slots the operator drained
	opStopped   bool  // stopped by the operator (smoothtool stop NAME)
	// tallies are what each slot the service has had counted in this
	// process (counts.go), shown or not.
	tallies map[int]tally
}

type slotSnapshot struct {
	InstanceStatus                  // without the counts (counts.go) and Inflight, read when asked
	rot            *rotation        // the process's place in rotation, nil before ready
	ident          handoff.Identity // the process's identity, once known
	fingerprint    string           // the process's settings (instance.fingerprint)
	err            error            // in backoff: what Error says, for errors.Is
}

// Status reports every service (disabled ones too), in configuration order.
func (s *Supervisor) Status() []ServiceStatus {
	out := make([]ServiceStatus, 0, len(s.list()))
	for _, sv := range s.list() {
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
		counts := sv.counted(snap)
		shown := map[int]bool{}
		for _, sl := range snap.slots {
			is := sl.InstanceStatus
			c := counts[sl.Slot]
			is.Restarts, is.RestartReasons = restartsOf(c)
			// The slot's first row (its instance, or the slot in backoff)
			// shows what the slot's processes out of rotation answered;
			// each row, what its own in rotation answered: their sum is
			// the slot's.
			if !shown[sl.Slot] {
				shown[sl.Slot] = true
				is.Served = c.Served
			}
			if sl.rot != nil {
				is.Inflight = sl.rot.inflight()
				is.Served += sl.rot.served()
			}
			st.Instances = append(st.Instances, is)
		}
		out = append(out, st)
	}
	return out
}
