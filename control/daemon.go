package control

import (
	"context"
	"time"

	"smoothserve/control/api"
)

// Daemon is what the control server asks of the running daemon.
type Daemon interface {
	// Status is the daemon's status, with the CPU and memory of each
	// instance's process group (a scan of /proc).
	Status() api.Status
	// BriefStatus is Status without the instances' CPU and memory: what a
	// caller that shows neither asks for (smoothtool before and after an
	// operation), at a fraction of the cost.
	BriefStatus() api.Status
	// Restart rolls the service's instances; name "all" rolls every
	// running service in turn. trigger says who asked, for the rollout's
	// record.
	Restart(ctx context.Context, name, trigger string) ([]*api.Rollout, error)
	// StopService returns when the service's instances are stopped.
	StopService(ctx context.Context, name string) error
	// StartService starts a stopped service, or with name "all" every
	// stopped one, and returns when their instances are ready.
	StartService(ctx context.Context, name string) error
	// Shutdown begins a graceful (or, with force, an immediate) stop of the
	// daemon and returns at once.
	Shutdown(force bool)
	// Upgrade replaces the daemon with a new process of its binary and
	// returns the new process's pid once it is ready, or why it failed
	// (the daemon then goes on serving as before).
	Upgrade(ctx context.Context) (newPid int, err error)
	// Reload applies the configuration on disk without replacing the
	// process: services added are started, removed ones stopped, changed
	// ones rolled. It fails, changing nothing, if the configuration is
	// invalid; a service it could not change says why in its Error.
	Reload(ctx context.Context) (*api.ReloadResult, error)
	// Drain takes the host out of an outer load balancer's rotation
	// (/health 503, then connections closed once answered); with wait it
	// returns once drained, or ctx is done. timeout above 0 declares it
	// drained after that long, requests in flight or not.
	Drain(ctx context.Context, wait bool, timeout time.Duration) (api.HostStatus, error)
	// Undrain puts the host back: /health 200.
	Undrain() api.HostStatus
	// DrainInstance takes one instance of a service out of rotation (it
	// keeps running); never the last one in rotation, unless force.
	DrainInstance(ctx context.Context, name string, slot int, force bool) error
	// UndrainInstance puts it back once it answers its readiness check.
	UndrainInstance(ctx context.Context, name string, slot int) error
}

// RestartTrigger is the trigger the server gives the rollouts it starts.
const RestartTrigger = "smoothtool restart"
