package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"smoothserve/config"
	"smoothserve/handoff"
	"smoothserve/internal/nofile"
)

// instance is one process lifetime on one port. Its goroutine (run) owns the
// process and its Backends (rot): it starts the process, waits until it is
// ready, puts it into rotation and starts its health checks, and then
// either loses it (a crash) or drains and stops it when asked (stop, or
// replace when it stayed unhealthy). It tells its service's run goroutine
// about every step over sv.events, and always ends with an exit report
// sent after the process is reaped.
type instance struct {
	sv   *service
	cfg  *config.Service // the service's settings when the instance was made
	home *slot           // the slot it serves; touched only by the service's run goroutine
	slot int
	port int
	addr string // ServerIP:port, dialled by probes and the proxy
	name string // "web#1", for logs and errors

	ctx  context.Context // done: give up starting, or drain and stop
	stop context.CancelFunc

	ready    chan struct{} // closed by run once the instance is in rotation; readyPid and readyIn are set before
	readyPid int
	readyIn  time.Duration // from start to ready

	rot *rotation // its place in rotation, from ready until drained or lost

	// replace is closed by the service to have the instance drained and
	// stopped, and reported lost with replaceErr (written before), so that
	// its slot starts again: it stayed unhealthy too long.
	replace    chan struct{}
	replaceErr error

	adopt *handoff.Instance // set: take over this running process instead of starting one
	// fingerprint is Fingerprint of the settings the process was started
	// with: cfg's, or for an adopted one what the state file recorded.
	fingerprint string
	ident       handoff.Identity // the process's identity, for the state file; written by run before it reports ready, read by the service after
	exited      chan struct{}    // closed by run at its end, after the exit report
	exitErr     error            // why it ended; written before exited is closed

	// The lifetime as its service sees it: owned by the service's run
	// goroutine, which updates them from events.
	state     State
	pid       int
	startedAt time.Time
	readyAt   time.Time
	joined    bool // ready reported and exit not yet: rot counts its requests
	replacing bool // replace is closed
	held      bool // overdue for replacement, held while another slot is down: said once
}

// exitKind says how an instance's lifetime ended.
type exitKind int

const (
	exitStartFailed exitKind = iota // never became ready (or was stopped before it did)
	exitLost                        // was ready, and exited by itself
	exitStopped                     // was drained and stopped as asked
)

// instanceEvent is what an instance reports to its service's run goroutine.
type instanceEvent struct {
	inst *instance

	// A step of a running lifetime, when !exited and health is
	// healthNone.
	state     State
	pid       int
	startedAt time.Time

	// A health check's news, when not healthNone; err is the last check's
	// failure.
	health healthChange

	// The end of the lifetime.
	exited bool
	kind   exitKind
	err    error // exitStartFailed, exitLost: why; exitStopped: could not stop
}

func (sv *service) newInstance(sl *slot, port int) *instance {
	slot := sl.index
	cfg := sv.cfg() // fixed for the instance's life
	in := &instance{
		sv:          sv,
		home:        sl,
		slot:        slot,
		port:        port,
		cfg:         cfg,
		addr:        net.JoinHostPort(cfg.ServerIP, strconv.Itoa(port)),
		fingerprint: Fingerprint(cfg),
		name:        fmt.Sprintf("%s#%d", cfg.Name, slot),
		ready:       make(chan struct{}),
		exited:      make(chan struct{}),
		replace:     make(chan struct{}),
		state:       StateStarting,
	}
	// A drained slot's every instance stays out of rotation (drain.go).
	in.rot = &rotation{set: sv.set, name: cfg.Name, slot: slot, addr: in.addr, drained: sl.drained}
	// A Kill cuts every wait short: starting, draining, the SIGTERM grace.
	in.ctx, in.stop = context.WithCancel(sv.sup.killCtx)
	return in
}

func (in *instance) report(ev instanceEvent) {
	ev.inst = in
	select {
	case in.sv.events <- ev:
	case <-in.sv.loop: // detached: nobody follows instances any more
	}
}

// run is the instance's goroutine; it returns after its exit report.
func (in *instance) run() {
	defer in.stop() // releases the context
	exit := instanceEvent{exited: true}
	defer func() {
		in.exitErr = exit.err
		in.report(exit)
		close(in.exited)
	}()

	var p process
	var err error
	if in.adopt != nil {
		p, err = in.adoptProcess()
	} else {
		p, err = in.start()
	}
	if err != nil {
		if in.sv.sup.detached.Load() {
			return
		}
		exit.kind, exit.err = exitStartFailed, err
		in.sv.note(slog.LevelWarn, "%v", err)
		return
	}
	procs := &in.sv.sup.procs
	defer procs.remove(p)
	if c, ok := p.(interface{ Close() error }); ok {
		defer c.Close()
	}
	if in.adopt == nil { // an adopted one's was verified (adoptPrior)
		if id, err := handoff.Identify(p.Pid()); err == nil {
			in.ident = id
		}
	}

	in.rot.join()
	in.report(instanceEvent{state: StateReady, pid: p.Pid()})
	in.sv.note(slog.LevelInfo, "%s pid %d ready on :%d", in.name, p.Pid(), in.port)
	in.readyPid = p.Pid()
	close(in.ready)

	stopChecks := in.startChecks()
	select {
	case <-p.Done():
		// Lost: no request may wait on it any longer, and its pooled
		// connections are dead.
		for _, b := range in.rot.end() {
			b.Down()
		}
		stopChecks()
		if in.sv.sup.detached.Load() {
			// Handed over: the next smoothserve stopped it (a rollout),
			// or sees it go. What is left of its group is that one's to
			// stop (handoff.Process.Signal), not this one's, and it is
			// no loss to report here.
			return
		}
		if err := kill(p); err != nil { // its group, in case it left children behind
			in.sv.note(slog.LevelError, "%s pid %d exited; what is left of its process group: %v", in.name, p.Pid(), err)
		}
		exit.kind = exitLost
		exit.err = fmt.Errorf("%s pid %d exited: %s", in.name, p.Pid(), exitReason(p.Err()))
		in.sv.note(slog.LevelWarn, "%v", exit.err)
	case <-in.replace:
		// Unhealthy too long: replaced as if lost, after a drain.
		stopChecks()
		exit.kind = exitLost
		exit.err = errors.Join(in.replaceErr, in.drain(p))
	case <-in.ctx.Done():
		stopChecks()
		if in.sv.sup.detached.Load() {
			// Handed over to the next smoothserve: leave the process be
			// (and in rotation: this daemon's proxy has drained by now).
			return
		}
		exit.kind = exitStopped
		exit.err = in.drain(p)
	}
}

// start starts the process and waits until it is ready. On error nothing is
// left running. It is the step a rollout needs to see fail.
func (in *instance) start() (process, error) {
	sv := in.sv
	cfg := in.cfg
	startErr := func(err error) error {
		return fmt.Errorf("starting instance %s on :%d: %w", in.name, in.port, err)
	}
	if err := in.ctx.Err(); err != nil {
		return nil, startErr(err)
	}
	if err := checkPortFree(in.ctx, in.addr, in.port); err != nil {
		if owner := sv.sup.ownerOf(in.port, sv); owner != "" {
			err = fmt.Errorf("%w: %s of this smoothserve; the two services' instance ports meet, which an upgrade applies at once, a reload one service after the other", err, owner)
		}
		return nil, startErr(err)
	}
	// Out of descriptors, the log's open and the exec (its pipe, its
	// pidfd) are made again once there is room.
	room := roomOf(in.ctx)
	var logf *os.File
	err := room.Retry("opening the log of "+in.name, func() (err error) { logf, err = sv.openLog(); return err })
	if err != nil {
		return nil, startErr(err)
	}
	var p *childProcess
	err = room.Retry("starting "+in.name, func() (err error) { p, err = startChild(in.command(logf), room); return err })
	if err != nil {
		return nil, startErr(execError(cfg.ExecutablePath, err))
	}
	if nofile.Exhausted(p.pidfdErr) {
		sv.note(slog.LevelWarn, "%s pid %d: its exit is waited for on a thread of its own: %v", in.name, p.Pid(), p.pidfdErr)
	} else if p.pidfdErr != nil && sv.sup.pidfdWarned.CompareAndSwap(false, true) {
		sv.note(slog.LevelWarn, "%s pid %d: its exit is waited for on a thread of its own (so is every instance's from now on): %v",
			in.name, p.Pid(), p.pidfdErr)
	}
	procs := &sv.sup.procs
	if !procs.add(p) {
		kill(p)
		return nil, startErr(errors.New("supervisor killed"))
	}
	started := time.Now()
	in.report(instanceEvent{state: StateStarting, pid: p.Pid(), startedAt: started})
	sv.note(slog.LevelInfo, "%s pid %d started on :%d", in.name, p.Pid(), in.port)

	// A process exec'd a moment ago could only refuse a probe now: the
	// first one waits a poll interval.
	err = waitReady(in.ctx, p, in.addr, cfg.HealthCheck, cfg.StartTimeout, pollInterval)
	if err == nil {
		in.readyIn = time.Since(started)
		return p, nil
	}
	return nil, startErr(in.notReady(p, err))
}

// killGrace is how long the instance's process group has after SIGTERM:
// its service's kill_timeout, or the supervisor's default.
func (in *instance) killGrace() time.Duration {
	if in.cfg.KillTimeout > 0 {
		return in.cfg.KillTimeout
	}
	return in.sv.sup.termGrace
}

// command is the instance's process to start, its output to logf.
func (in *instance) command(logf *os.File) *exec.Cmd {
	cmd := exec.Command(in.cfg.ExecutablePath, in.cfg.ExpandArgs(in.port)...)
	cmd.Dir = in.cfg.WorkingDir
	cmd.Env = in.environ()
	// The file itself, not a pipe: the instance writes its output without
	// smoothserve, and goes on after smoothserve is gone.
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own group, so signals reach its children; and no Pdeathsig, so
	// that it survives a crash of smoothserve.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// notReady ends p, which did not become ready (err), and lets go of it:
// one handed over while starting is left to the next smoothserve, which
// adopts it; one asked to stop is terminated (nothing to drain); any other
// is killed.
func (in *instance) notReady(p process, err error) error {
	sup := in.sv.sup
	defer sup.procs.remove(p)
	switch {
	case in.ctx.Err() != nil && sup.detached.Load():
		return err
	case in.ctx.Err() != nil:
		_, terr := terminate(sup.killCtx, p, in.killGrace())
		return errors.Join(err, terr)
	default:
		return errors.Join(err, kill(p))
	}
}

// drain takes the instance out of rotation, waits (up to StopTimeout) for
// the requests it is serving, and stops its process. It runs once per
// instance, on its goroutine; stop is how others ask for it, any number of
// times.
func (in *instance) drain(p process) error {
	sv := in.sv
	backends := in.rot.end() // marks them draining: no new request reaches it
	in.report(instanceEvent{state: StateDraining, pid: p.Pid()})
	ctx, cancel := context.WithTimeout(sv.sup.killCtx, in.cfg.StopTimeout)
	idle := true
	for _, b := range backends {
		idle = b.WaitIdle(ctx) && idle
	}
	cancel()
	for _, b := range backends {
		b.CloseIdle()
	}

	in.report(instanceEvent{state: StateStopping, pid: p.Pid()})
	if idle {
		sv.note(slog.LevelInfo, "%s pid %d stopping", in.name, p.Pid())
	} else {
		sv.note(slog.LevelWarn, "%s pid %d stopping with %d requests in flight", in.name, p.Pid(), in.rot.inflight())
	}
	overran, err := terminate(sv.sup.killCtx, p, in.killGrace())
	if err != nil {
		err = fmt.Errorf("stopping instance %s pid %d: %w", in.name, p.Pid(), err)
		sv.note(slog.LevelError, "%v", err)
		return err
	}
	if overran > 0 {
		sv.note(slog.LevelWarn, "%s pid %d stopped: %s; SIGKILL after kill_timeout %v to %s", in.name, p.Pid(), exitReason(p.Err()),
			in.killGrace(), overranWhat(p, overran))
		return nil
	}
	sv.note(slog.LevelInfo, "%s pid %d stopped: %s", in.name, p.Pid(), exitReason(p.Err()))
	return nil
}

// environ is smoothserve's environment, then the service's Env, then the
// instance's identity (later entries win).
func (in *instance) environ() []string {
	cfg := in.cfg
	env := append(os.Environ(), cfg.ExpandEnv(in.port)...)
	return append(env,
		"SMOOTHSERVE_SERVICE="+cfg.Name,
		"SMOOTHSERVE_PORT="+strconv.Itoa(in.port),
		"SMOOTHSERVE_SLOT="+strconv.Itoa(in.slot),
	)
}
