package supervisor

import (
	"errors"
	"time"
)

// Errors of the operator commands, for errors.Is.
var (
	ErrUnknownService = errors.New("unknown service")
	ErrDisabled       = errors.New("service is disabled")
	ErrRolloutFailed  = errors.New("rollout failed")
	ErrNotRunning     = errors.New("supervisor is not running")
)

// Rollout outcomes.
const (
	RolloutRunning = "running"
	RolloutOK      = "ok"
	RolloutFailed  = "failed"  // a replacement did not become ready: the instances not yet replaced keep serving
	RolloutAborted = "aborted" // the service or smoothserve was stopped during it
)

// Rollout is one rolling restart of a service, as Status and Restart report
// it.
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
