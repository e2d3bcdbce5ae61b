package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"smoothserve/config"
)

// logTailLines is how much of a service's log a failed rollout shows.
const logTailLines = 20

// rolloutRun is a rollout under way. Its goroutine (run) owns rep, and
// hands copies to the service's run goroutine to publish.
type rolloutRun struct {
	sv     *service
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when it has ended; rep is final then
	rep    Rollout
}

var errAborted = errors.New("aborted: the service is stopping")

// Restart rolls the instances of service name (or of every running
// service, one after another, for "all") and waits for the outcome. A
// restart asked while one is under way joins it. trigger says who asked.
func (s *Supervisor) Restart(ctx context.Context, name, trigger string) ([]*Rollout, error) {
	if name != "all" {
		sv, err := s.find(name)
		if err != nil {
			return nil, err
		}
		r, err := sv.restart(ctx, trigger)
		if r == nil {
			return nil, err
		}
		return []*Rollout{r}, err
	}
	var out []*Rollout
	for _, sv := range s.services {
		if !sv.cfg.Enabled || sv.snap.Load().state != ServiceRunning {
			continue
		}
		r, err := sv.restart(ctx, trigger)
		if r != nil {
			out = append(out, r)
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// find returns the enabled service called name.
func (s *Supervisor) find(name string) (*service, error) {
	for _, sv := range s.services {
		if sv.cfg.Name == name {
			if !sv.cfg.Enabled {
				return nil, fmt.Errorf("%w: %s (enabled: false in %s)", ErrDisabled, name, sv.cfg.File)
			}
			return sv, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownService, name)
}

func (sv *service) restart(ctx context.Context, trigger string) (*Rollout, error) {
	var run *rolloutRun
	var err error
	ok := sv.call(func() {
		switch {
		case sv.stopping:
			err = ErrNotRunning
		case !sv.wanted:
			err = fmt.Errorf("service %s is stopped: start it instead", sv.cfg.Name)
		case sv.rollout != nil:
			run = sv.rollout // one rollout at a time: join it
		default:
			run = sv.beginRollout(trigger)
		}
	})
	if !ok {
		return nil, ErrNotRunning
	}
	if err != nil {
		return nil, err
	}
	select {
	case <-run.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the rollout of %s: %w", sv.cfg.Name, ctx.Err())
	}
	r := run.rep
	r.Instances = slices.Clone(r.Instances)
	if r.Outcome != RolloutOK {
		return &r, fmt.Errorf("%w: %s", ErrRolloutFailed, r.Error)
	}
	return &r, nil
}

// beginRollout starts a rollout; on the run goroutine.
func (sv *service) beginRollout(trigger string) *rolloutRun {
	ctx, cancel := context.WithCancel(sv.sup.killCtx)
	run := &rolloutRun{sv: sv, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	run.rep = Rollout{
		Service:   sv.cfg.Name,
		Trigger:   trigger,
		Strategy:  sv.cfg.RestartStrategy,
		StartedAt: time.Now(),
		Outcome:   RolloutRunning,
	}
	if run.rep.Strategy == "" {
		run.rep.Strategy = config.StrategySurge
	}
	sv.rollout = run
	sv.last = run.copyRep()
	sv.note(slog.LevelInfo, "rolling restart of %s (%s), asked by %s", sv.cfg.Name, run.rep.Strategy, trigger)
	go run.run()
	return run
}

func (run *rolloutRun) copyRep() *Rollout {
	r := run.rep
	r.Instances = slices.Clone(r.Instances)
	return &r
}

// run replaces every slot in turn and reports the outcome.
func (run *rolloutRun) run() {
	defer close(run.done)
	defer run.cancel()
	sv := run.sv
	err := run.replaceAll()
	run.rep.FinishedAt = time.Now()
	switch {
	case err == nil:
		run.rep.Outcome = RolloutOK
		sv.note(slog.LevelInfo, "rolling restart of %s done in %v", sv.cfg.Name, run.rep.FinishedAt.Sub(run.rep.StartedAt).Round(time.Millisecond))
	case errors.Is(err, errAborted):
		run.rep.Outcome, run.rep.Error = RolloutAborted, err.Error()
		sv.note(slog.LevelWarn, "rolling restart of %s %v", sv.cfg.Name, err)
	default:
		run.rep.Outcome, run.rep.Error = RolloutFailed, err.Error()
		sv.note(slog.LevelError, "rolling restart of %s failed: %v; the instances not replaced keep serving", sv.cfg.Name, err)
		run.rep.LogTail = sv.logTail(logTailLines)
	}
	final := run.copyRep()
	sv.call(func() {
		sv.last = final
		if sv.rollout == run {
			sv.rollout = nil
		}
	})
}

func (run *rolloutRun) replaceAll() error {
	sv := run.sv
	for i := range sv.cfg.InstanceCount {
		if i > 0 && sv.cfg.DelayRunningTime > 0 {
			select {
			case <-time.After(sv.cfg.DelayRunningTime):
			case <-run.ctx.Done():
				return errAborted
			}
		}
		var step RolledInstance
		var err error
		if sv.cfg.RestartStrategy == config.StrategyInPlace {
			step, err = run.inPlace(i)
		} else {
			step, err = run.surge(i)
		}
		if err != nil {
			return err
		}
		run.rep.Instances = append(run.rep.Instances, step)
		rep := run.copyRep()
		sv.call(func() { sv.last = rep })
	}
	return nil
}

// surge starts the replacement of slot i on the other port of its pair,
// waits until it is in rotation, then drains and stops the old instance:
// the slot always has a ready instance.
func (run *rolloutRun) surge(i int) (RolledInstance, error) {
	sv := run.sv
	var next *instance
	if !sv.call(func() {
		sl := sv.slots[i]
		port := sv.cfg.InstancePort(i, true)
		if sl.port == port {
			port = sv.cfg.InstancePort(i, false)
		}
		next = sv.newInstance(i, port)
		sl.next = next
		sv.launch(next)
	}) {
		return RolledInstance{}, errAborted
	}
	if err := run.awaitReady(next); err != nil {
		return RolledInstance{}, err
	}
	var old *instance
	var oldPid int
	lost := false
	sv.call(func() {
		sl := sv.slots[i]
		if sl.next != next { // lost between ready and now
			lost = true
			return
		}
		old = sl.inst
		if old != nil {
			oldPid = old.pid
			sl.retiring = append(sl.retiring, old)
			old.stop()
		}
		sv.takeSlot(sl, next)
	})
	if lost {
		return RolledInstance{}, run.replacementFailed(next)
	}
	if old != nil {
		<-old.exited // drained and stopped; bounded by stop_timeout and the SIGTERM grace
	}
	return RolledInstance{Slot: i, OldPid: oldPid, NewPid: next.readyPid, Port: next.port, ReadyMS: next.readyIn.Milliseconds()}, nil
}

// inPlace drains and stops the instance of slot i, then starts its
// replacement on the same port. Requests wait for it when no other
// instance is ready.
func (run *rolloutRun) inPlace(i int) (RolledInstance, error) {
	sv := run.sv
	var old *instance
	var oldPid int
	if !sv.call(func() {
		sl := sv.slots[i]
		old = sl.inst
		if old != nil {
			oldPid = old.pid
			sl.retiring = append(sl.retiring, old)
			sl.inst = nil
			old.stop()
		}
		sl.retryAt = time.Time{} // the rollout starts it, not the backoff
	}) {
		return RolledInstance{}, errAborted
	}
	if old != nil {
		<-old.exited
	}
	var next *instance
	if !sv.call(func() {
		sl := sv.slots[i]
		next = sv.newInstance(i, sl.port)
		sl.next = next
		sv.launch(next)
	}) {
		return RolledInstance{}, errAborted
	}
	if err := run.awaitReady(next); err != nil {
		// The slot is empty: back to crash-restart with backoff.
		sv.call(func() {
			sl := sv.slots[i]
			if sl.inst == nil && sl.next == nil && !sv.stopping && sv.wanted {
				sl.retryAt = time.Now().Add(sl.backoff)
			}
		})
		return RolledInstance{}, err
	}
	lost := false
	sv.call(func() {
		sl := sv.slots[i]
		if sl.next != next {
			lost = true
			return
		}
		sv.takeSlot(sl, next)
	})
	if lost {
		return RolledInstance{}, run.replacementFailed(next)
	}
	return RolledInstance{Slot: i, OldPid: oldPid, NewPid: next.readyPid, Port: next.port, ReadyMS: next.readyIn.Milliseconds()}, nil
}

// takeSlot makes a rollout's ready replacement the slot's instance; on the
// run goroutine.
func (sv *service) takeSlot(sl *slot, next *instance) {
	sl.inst, sl.next = next, nil
	sl.port = next.port
	sl.starts++
	sl.retryAt, sl.lastErr = time.Time{}, nil
	sl.readyAt = time.Now()
	sl.backoff = minBackoff
}

// awaitReady waits until a replacement is in rotation. If it exits first,
// the rollout fails; if the rollout is cancelled, it is stopped.
func (run *rolloutRun) awaitReady(next *instance) error {
	select {
	case <-next.ready:
		return nil
	case <-next.exited:
		return run.replacementFailed(next)
	case <-run.ctx.Done():
		sv := run.sv
		sv.call(func() {
			sl := sv.slots[next.slot]
			if sl.next == next {
				sl.next = nil
				sl.retiring = append(sl.retiring, next)
			}
			next.stop()
		})
		return errAborted
	}
}

func (run *rolloutRun) replacementFailed(next *instance) error {
	<-next.exited
	err := next.exitErr
	if err == nil {
		err = errors.New("it exited")
	}
	return fmt.Errorf("replacement %s on :%d: %w", next.name, next.port, err)
}

// logTail returns the last n lines of the service's log file.
func (sv *service) logTail(n int) []string {
	f, err := os.Open(filepath.Join(sv.sup.cfg.LogDir, sv.cfg.Name+".log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	const window = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	off := max(st.Size()-window, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil
	}
	lines := strings.Split(string(bytes.TrimRight(buf, "\n")), "\n")
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // a partial first line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// StopService stops one service: its requests get 503 at once, requests in
// flight finish, its instances are drained and stopped. Other services are
// not touched. It returns once its instances have exited.
func (s *Supervisor) StopService(ctx context.Context, name string) error {
	sv, err := s.find(name)
	if err != nil {
		return err
	}
	if !sv.call(func() {
		if sv.stopping || !sv.wanted {
			return
		}
		sv.wanted = false
		sv.set.SetStopped(true)
		sv.stopAll()
		sv.note(slog.LevelInfo, "service %s stopping, as asked", sv.cfg.Name)
	}) {
		return ErrNotRunning
	}
	return s.waitFor(ctx, func() bool { return sv.snap.Load().state == ServiceStopped },
		func() string { return fmt.Sprintf("waiting for %s to stop", name) })
}

// StartService starts a service stopped by StopService (every one for
// "all") and returns once its instances are ready.
func (s *Supervisor) StartService(ctx context.Context, name string) error {
	var svs []*service
	if name == "all" {
		for _, sv := range s.services {
			if sv.cfg.Enabled {
				svs = append(svs, sv)
			}
		}
	} else {
		sv, err := s.find(name)
		if err != nil {
			return err
		}
		svs = append(svs, sv)
	}
	for _, sv := range svs {
		// A service still stopping finishes that first.
		if err := s.waitFor(ctx, func() bool { return sv.snap.Load().state != ServiceStopping },
			func() string { return fmt.Sprintf("waiting for %s to finish stopping", sv.cfg.Name) }); err != nil {
			return err
		}
		var err error
		if !sv.call(func() {
			if sv.stopping {
				err = ErrNotRunning
				return
			}
			if sv.wanted {
				return
			}
			sv.wanted = true
			sv.set.SetStopped(false)
			for _, sl := range sv.slots {
				if sl.inst == nil && sl.next == nil {
					sl.backoff = minBackoff
					sv.startSlot(sl)
				}
			}
			sv.note(slog.LevelInfo, "service %s starting, as asked", sv.cfg.Name)
		}) {
			err = ErrNotRunning
		}
		if err != nil {
			return err
		}
	}
	for _, sv := range svs {
		if err := s.waitFor(ctx, func() bool { return sv.readyCount() >= sv.cfg.InstanceCount },
			func() string {
				return fmt.Sprintf("waiting for %s: %d of %d ready", sv.cfg.Name, sv.readyCount(), sv.cfg.InstanceCount)
			}); err != nil {
			return err
		}
	}
	return nil
}

// waitFor waits until cond holds (checked whenever a service publishes).
func (s *Supervisor) waitFor(ctx context.Context, cond func() bool, what func() string) error {
	for {
		changed := s.changedChan()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what(), ctx.Err())
		}
	}
}
