package agent

import "strconv"

// State is what the agent answers: whether HAProxy should send this
// instance new connections.
type State int

const (
	// Serving puts the server in rotation: operationally up and
	// administratively ready, cancelling an earlier Draining or
	// Maintenance.
	Serving State = iota
	// Draining keeps the server's established and persistent (stick
	// table, cookie) connections but sends it no new ones: HAProxy's DRAIN
	// mode, weight 0.
	Draining
	// Maintenance sends the server nothing new at all: HAProxy's MAINT
	// mode.
	Maintenance
)

func (s State) String() string {
	switch s {
	case Serving:
		return "serving"
	case Draining:
		return "draining"
	case Maintenance:
		return "maintenance"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// line is the agent's answer for s. A State this package does not know is
// not a promise to serve, so it answers as Maintenance.
func (s State) line() string {
	switch s {
	case Serving:
		return "up ready\n"
	case Draining:
		return "drain\n"
	}
	return "maint\n"
}
