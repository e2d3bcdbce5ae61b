package supervisor

import (
	"errors"

	"smoothserve/control/api"
)

// Errors of the operator commands, for errors.Is. The control API reports
// the first two as 404 and 409.
var (
	ErrUnknownService = api.ErrUnknownService
	ErrDisabled       = api.ErrDisabled
	ErrRolloutFailed  = errors.New("rollout failed")
	ErrNotRunning     = errors.New("supervisor is not running")
)

// Rollout outcomes.
const (
	RolloutRunning = api.RolloutRunning
	RolloutOK      = api.RolloutOK
	RolloutFailed  = api.RolloutFailed  // a replacement did not become ready: the instances not yet replaced keep serving
	RolloutAborted = api.RolloutAborted // the service or smoothserve was stopped during it
	RolloutKept    = api.RolloutKept    // the service is stopped: its new settings run at its start (applyStopped)
)

// A rollout is reported in the control API's types: Rollout is one rolling
// restart of a service, as Status and Restart report it, and RolledInstance
// one slot it replaced.
type (
	Rollout        = api.Rollout
	RolledInstance = api.RolledInstance
)
