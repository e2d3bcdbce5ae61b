package daemon

import (
	"testing"

	"smoothserve/control/api"
	"smoothserve/supervisor"
)

// smoothtool tells a port held by another process from other failures by
// api.PortInUse in an instance's error, without linking the supervisor.
func TestPortInUseIsTheSupervisorsText(t *testing.T) {
	if got := supervisor.ErrPortInUse.Error(); got != api.PortInUse {
		t.Errorf("supervisor.ErrPortInUse is %q, api.PortInUse %q", got, api.PortInUse)
	}
}
