package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"smoothserve/control"
	"smoothserve/control/api"
	"smoothserve/upgrade"
)

// daemonControl is what the control API reaches of the daemon: the
// supervisor's operations, and the same stop a signal triggers.
type daemonControl struct {
	d         *Daemon
	startedAt time.Time
	// stops feeds serve's select as signals do: false asks for a graceful
	// stop, true for killing everything at once.
	stops chan<- bool
}

// Upgrade replaces the daemon. A new process that took over but whose pid
// could not be read is a success (new pid 0): this process is on its way
// out, and saying "goes on serving" would be false.
func (d *daemonControl) Upgrade(ctx context.Context) (int, error) {
	pid, err := d.d.upgrade(ctx)
	if errors.Is(err, upgrade.ErrTookOver) {
		slog.Warn("upgrade: the new smoothserve took over", "err", err)
		return 0, nil
	}
	return pid, err
}

var _ control.Daemon = (*daemonControl)(nil)

// Status shows the instances as the supervisor has them, and each
// service's hosts and proxy port as they run: the running configuration's.
func (d *daemonControl) Status() api.Status {
	cfg := d.d.config()
	services := d.d.sup.Status()
	for i, st := range services {
		if svc := cfg.Service(st.Name); svc != nil {
			services[i].Hosts = append([]string{}, svc.ServerNames...)
			services[i].Port = svc.Port
		}
	}
	return api.Status{
		Pid:       os.Getpid(),
		StartedAt: d.startedAt,
		Config:    cfg.Path,
		Services:  services,
	}
}

func (d *daemonControl) Restart(ctx context.Context, name, trigger string) ([]*api.Rollout, error) {
	return d.d.sup.Restart(ctx, name, trigger)
}

func (d *daemonControl) StopService(ctx context.Context, name string) error {
	return d.d.sup.StopService(ctx, name)
}

func (d *daemonControl) StartService(ctx context.Context, name string) error {
	return d.d.sup.StartService(ctx, name)
}

// Shutdown never blocks: once serve has a request of each kind queued, a
// further one would change nothing.
func (d *daemonControl) Shutdown(force bool) {
	select {
	case d.stops <- force:
	default:
	}
}

// controlServer is the running control API.
type controlServer struct {
	srv  *control.Server
	done chan struct{} // closed when Serve has returned
}

// serveControl serves the control API on ln until closeControl.
func serveControl(ln net.Listener, d control.Daemon, log *slog.Logger) *controlServer {
	c := &controlServer{srv: control.NewServer(d, log), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		if err := c.srv.Serve(ln); err != nil {
			log.Error("control socket failed: smoothtool cannot reach smoothserve", "err", err)
		}
	}()
	return c
}

// close stops the control API, last thing before smoothserve exits: until
// then smoothtool can watch the stop. Operations still waiting get a
// moment to answer, then their contexts are cancelled. The socket goes
// with the listener.
func (c *controlServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.srv.Shutdown(ctx)
	<-c.done
}
