package daemon

import (
	"context"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"time"

	"smoothserve/control"
	"smoothserve/control/api"
	"smoothserve/internal/nofile"
)

// daemonControl is what the control API reaches of the daemon: the
// supervisor's operations, and the same stop a signal triggers.
type daemonControl struct {
	d         *Daemon
	startedAt time.Time
	// stops feeds Run's select as signals do: false asks for a graceful
	// stop, true for killing everything at once.
	stops chan<- bool
}

// Upgrade replaces the daemon (upgrade.go). A new process that took over
// but whose pid could not be read is a success with new pid 0.
func (d *daemonControl) Upgrade(ctx context.Context) (int, error) {
	return d.d.upgrade(ctx)
}

var _ control.Daemon = (*daemonControl)(nil)

// Status shows the instances as the supervisor has them, with the CPU and
// memory of each one's process group, and each service's hosts and proxy
// port as they run: the running configuration's.
func (d *daemonControl) Status() api.Status {
	st := d.BriefStatus()
	d.d.measure(st.Services)
	return st
}

// BriefStatus is Status without measuring the instances.
func (d *daemonControl) BriefStatus() api.Status {
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
		Host:      d.d.host.Status(),
	}
}

// usageTimeout bounds the measuring of the instances in Status: a first
// one waits the sampler's 200 ms.
const usageTimeout = time.Second

// measure sets the CPU and memory of every instance of services that has
// a process, in one Measure of their process groups; an instance not
// measured keeps none.
func (d *Daemon) measure(services []api.ServiceStatus) {
	if d.usage == nil {
		return
	}
	var pids []int
	for _, s := range services {
		for _, in := range s.Instances {
			if in.Pid > 0 {
				pids = append(pids, in.Pid)
			}
		}
	}
	if len(pids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), usageTimeout)
	defer cancel()
	use := d.usage.Measure(ctx, pids)
	for _, s := range services {
		for j := range s.Instances {
			in := &s.Instances[j]
			if u, ok := use[in.Pid]; ok && in.Pid > 0 {
				in.CPUPercent = math.Round(u.CPUPercent*10) / 10
				in.RSSBytes = u.RSS
			}
		}
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

func (d *daemonControl) Reload(ctx context.Context) (*api.ReloadResult, error) {
	return d.d.Reload(ctx)
}

func (d *daemonControl) Drain(ctx context.Context, wait bool, timeout time.Duration) (api.HostStatus, error) {
	return d.d.host.Drain(ctx, wait, timeout)
}

func (d *daemonControl) Undrain() api.HostStatus { return d.d.host.Undrain() }

func (d *daemonControl) DrainInstance(ctx context.Context, name string, slot int, force bool) error {
	return d.d.sup.DrainInstance(ctx, name, slot, force)
}

func (d *daemonControl) UndrainInstance(ctx context.Context, name string, slot int) error {
	return d.d.sup.UndrainInstance(ctx, name, slot)
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
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
	once sync.Once     // close
}

// serveControl serves the control API on ln until close. Out of
// descriptors, its accept asks room for some: smoothtool is how the
// operator acts then.
func serveControl(ln net.Listener, d control.Daemon, room nofile.Room, log *slog.Logger) *controlServer {
	c := &controlServer{srv: control.NewServer(d, log), ln: ln, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		if err := c.srv.Serve(room.Listener(ln, "accepting on the control socket")); err != nil {
			log.Error("control socket failed: smoothtool cannot reach smoothserve", "err", err)
		}
	}()
	return c
}

// stopAccepting makes this daemon stop answering on the control socket,
// which stays in place for the new daemon that holds it too.
func (c *controlServer) stopAccepting() {
	control.KeepSocket(c.ln)
	c.srv.StopAccepting()
}

// close stops the control API, last thing before smoothserve exits: until
// then smoothtool can watch the stop. Operations still waiting get a
// moment to answer, then their contexts are cancelled. The socket goes
// with the listener (unless stopAccepting kept it). Safe to call twice.
func (c *controlServer) close() {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.srv.Shutdown(ctx)
		<-c.done
	})
}
