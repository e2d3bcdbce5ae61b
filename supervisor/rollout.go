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
		r, err := sv.restart(ctx, trigger, nil)
		if r == nil {
			return nil, err
		}
		return []*Rollout{r}, err
	}
	var out []*Rollout
	for _, sv := range s.services {
		if !sv.cfg().Enabled || sv.snap.Load().state != ServiceRunning {
			continue
		}
		r, err := sv.restart(ctx, trigger, nil)
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
		if sv.cfg().Name == name {
			if !sv.cfg().Enabled {
				return nil, fmt.Errorf("%w: %s (enabled: false in %s)", ErrDisabled, name, sv.cfg().File)
			}
			return sv, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownService, name)
}

// Apply rolls service cfg.Name onto new settings cfg (which must have
// passed config validation): every instance is replaced by one started with
// them, and instance_count may grow or shrink. A rollout under way is let
// finish first: the settings changed after it began.
func (s *Supervisor) Apply(ctx context.Context, cfg *config.Service, trigger string) (*Rollout, error) {
	sv, err := s.find(cfg.Name)
	if err != nil {
		return nil, err
	}
	return sv.restart(ctx, trigger, cfg)
}

// restart begins a rollout (onto newCfg, if not nil) or joins the one under
// way, and waits for its outcome.
func (sv *service) restart(ctx context.Context, trigger string, newCfg *config.Service) (*Rollout, error) {
	var run *rolloutRun
	for {
		var err error
		var busy *rolloutRun
		ok := sv.call(func() {
			switch {
			case sv.stopping:
				err = ErrNotRunning
			case sv.frozen:
				err = ErrFrozen
			case !sv.wanted:
				err = fmt.Errorf("service %s is stopped: start it instead", sv.cfg().Name)
			case sv.rollout != nil && newCfg == nil:
				run = sv.rollout // one rollout at a time: join it
			case sv.rollout != nil:
				busy = sv.rollout
			default:
				run = sv.beginRollout(trigger, newCfg)
			}
		})
		if !ok {
			return nil, ErrNotRunning
		}
		if err != nil {
			return nil, err
		}
		if busy == nil {
			break
		}
		select {
		case <-busy.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the rollout of %s under way: %w", sv.cfg().Name, ctx.Err())
		}
	}
	select {
	case <-run.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the rollout of %s: %w", sv.cfg().Name, ctx.Err())
	}
	r := run.rep
	r.Instances = slices.Clone(r.Instances)
	if r.Outcome != RolloutOK {
		return &r, fmt.Errorf("%w: %s", ErrRolloutFailed, r.Error)
	}
	return &r, nil
}

// beginRollout starts a rollout, onto newCfg if not nil; on the run
// goroutine.
func (sv *service) beginRollout(trigger string, newCfg *config.Service) *rolloutRun {
	if newCfg != nil {
		sv.conf.Store(newCfg)
		sv.set.SetStartTimeout(newCfg.StartTimeout)
		sv.set.SetMaxBodySize(newCfg.MaxBodySize)
	}
	ctx, cancel := context.WithCancel(sv.sup.killCtx)
	run := &rolloutRun{sv: sv, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	run.rep = Rollout{
		Service:   sv.cfg().Name,
		Trigger:   trigger,
		Strategy:  sv.cfg().RestartStrategy,
		StartedAt: time.Now(),
		Outcome:   RolloutRunning,
	}
	if run.rep.Strategy == "" {
		run.rep.Strategy = config.StrategySurge
	}
	sv.rollout = run
	sv.last = run.copyRep()
	sv.note(slog.LevelInfo, "rolling restart of %s (%s), asked by %s", sv.cfg().Name, run.rep.Strategy, trigger)
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
		sv.note(slog.LevelInfo, "rolling restart of %s done in %v", sv.cfg().Name, run.rep.FinishedAt.Sub(run.rep.StartedAt).Round(time.Millisecond))
	case errors.Is(err, errAborted):
		run.rep.Outcome, run.rep.Error = RolloutAborted, err.Error()
		sv.note(slog.LevelWarn, "rolling restart of %s %v", sv.cfg().Name, err)
	default:
		run.rep.Outcome, run.rep.Error = RolloutFailed, err.Error()
		sv.note(slog.LevelError, "rolling restart of %s failed: %v; the instances not replaced keep serving", sv.cfg().Name, err)
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
	cfg := sv.cfg() // fixed for the rollout: set by beginRollout
	var have int
	sv.call(func() { have = len(sv.slots) })
	for i := range cfg.InstanceCount {
		if i > 0 && cfg.DelayRunningTime > 0 {
			select {
			case <-time.After(cfg.DelayRunningTime):
			case <-run.ctx.Done():
				return errAborted
			}
		}
		var step RolledInstance
		var err error
		switch {
		case i >= have:
			step, err = run.addSlot(i)
		case cfg.RestartStrategy == config.StrategyInPlace:
			step, err = run.inPlace(i)
		default:
			step, err = run.surge(i)
		}
		if err != nil {
			return err
		}
		run.rep.Instances = append(run.rep.Instances, step)
		rep := run.copyRep()
		sv.call(func() { sv.last = rep })
	}
	if have > cfg.InstanceCount {
		return run.dropSlots(cfg.InstanceCount)
	}
	return nil
}

// addSlot starts an instance for a new slot i (instance_count grew).
func (run *rolloutRun) addSlot(i int) (RolledInstance, error) {
	sv := run.sv
	var in *instance
	if !sv.call(func() {
		sl := &slot{index: i, backoff: minBackoff}
		sl.port = sv.inPlacePort(sl)
		sv.slots = append(sv.slots, sl)
		sv.startSlot(sl)
		in = sl.inst
	}) {
		return RolledInstance{}, errAborted
	}
	select {
	case <-in.ready:
	case <-in.exited: // the slot goes on restarting it with backoff
		return RolledInstance{}, run.replacementFailed(in)
	case <-run.ctx.Done():
		return RolledInstance{}, errAborted
	}
	return RolledInstance{Slot: i, NewPid: in.readyPid, Port: in.port, ReadyMS: in.readyIn.Milliseconds()}, nil
}

// dropSlots drains and stops the instances of the slots from n on
// (instance_count shrank) and waits until they are gone.
func (run *rolloutRun) dropSlots(n int) error {
	sv := run.sv
	var gone []*instance
	if !sv.call(func() {
		for _, sl := range sv.slots[n:] {
			if sl.inst != nil {
				sl.retiring = append(sl.retiring, sl.inst)
				sl.inst = nil
			}
			if sl.next != nil {
				sl.retiring = append(sl.retiring, sl.next)
				sl.next = nil
			}
			for _, in := range sl.retiring {
				in.stop()
				gone = append(gone, in)
			}
			if len(sl.retiring) > 0 {
				sv.removed = append(sv.removed, sl)
			}
		}
		sv.slots = sv.slots[:n:n]
	}) {
		return errAborted
	}
	for _, in := range gone {
		<-in.exited
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
		port := sv.surgePort(sl)
		next = sv.newInstance(sl, port)
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
		next = sv.newInstance(sl, sv.inPlacePort(sl))
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
			sl := next.home
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
	f, err := os.Open(filepath.Join(sv.sup.cfg.LogDir, sv.cfg().Name+".log"))
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
		if sv.frozen {
			err = ErrFrozen
			return
		}
		if sv.stopping || !sv.wanted {
			return
		}
		sv.wanted = false
		sv.set.SetStopped(true)
		sv.stopAll()
		sv.note(slog.LevelInfo, "service %s stopping, as asked", sv.cfg().Name)
	}) {
		return ErrNotRunning
	}
	if err != nil {
		return err
	}
	return s.waitFor(ctx, func() bool { return sv.snap.Load().state == ServiceStopped },
		func() string { return fmt.Sprintf("waiting for %s to stop", name) })
}

// StartService starts a service stopped by StopService (every one for
// "all"), and at once any slot of it waiting to start again after a
// failure. It returns once its instances are ready, or with the error of a
// slot whose port another process holds (which waiting would not mend).
func (s *Supervisor) StartService(ctx context.Context, name string) error {
	var svs []*service
	if name == "all" {
		for _, sv := range s.services {
			if sv.cfg().Enabled {
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
			func() string { return fmt.Sprintf("waiting for %s to finish stopping", sv.cfg().Name) }); err != nil {
			return err
		}
		var err error
		if !sv.call(func() {
			if sv.stopping {
				err = ErrNotRunning
				return
			}
			if sv.frozen {
				err = ErrFrozen
				return
			}
			if !sv.wanted {
				sv.wanted = true
				sv.set.SetStopped(false)
				sv.note(slog.LevelInfo, "service %s starting, as asked", sv.cfg().Name)
			}
			if sv.rollout != nil {
				return // it starts the slots it empties
			}
			// A slot waiting to start again after a failure starts now,
			// and its last error is no longer news.
			for _, sl := range sv.slots {
				if sl.inst == nil && sl.next == nil {
					sl.backoff, sl.lastErr = minBackoff, nil
					sv.startSlot(sl)
				}
			}
		}) {
			err = ErrNotRunning
		}
		if err != nil {
			return err
		}
	}
	for _, sv := range svs {
		var blocked error
		if err := s.waitFor(ctx, func() bool {
			blocked = sv.portBlocked()
			return blocked != nil || sv.readyCount() >= sv.cfg().InstanceCount
		}, func() string {
			return fmt.Sprintf("waiting for %s: %d of %d ready", sv.cfg().Name, sv.readyCount(), sv.cfg().InstanceCount)
		}); err != nil {
			return err
		}
		if blocked != nil {
			return fmt.Errorf("an instance of %s cannot start (%w); smoothserve tries again with backoff until the port is free", sv.cfg().Name, blocked)
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

// surgePort is the port for a surge replacement of sl: the other port of
// its pair. When the pair moved (start_instance_port changed), a port of
// the new pair that none of the service's instances holds.
func (sv *service) surgePort(sl *slot) int {
	cfg := sv.cfg()
	primary, alt := cfg.InstancePort(sl.index, false), cfg.InstancePort(sl.index, true)
	switch sl.port {
	case primary:
		return alt
	case alt:
		return primary
	}
	if sv.portHeld(primary) {
		return alt
	}
	return primary
}

// inPlacePort is the port for an in-place replacement of sl: its own, unless
// its pair moved.
func (sv *service) inPlacePort(sl *slot) int {
	cfg := sv.cfg()
	primary, alt := cfg.InstancePort(sl.index, false), cfg.InstancePort(sl.index, true)
	if sl.port == primary || sl.port == alt {
		return sl.port
	}
	if sv.portHeld(primary) {
		return alt
	}
	return primary
}

// portHeld reports whether one of the service's live instances uses port.
func (sv *service) portHeld(port int) bool {
	for _, sl := range slices.Concat(sv.slots, sv.removed) {
		for _, in := range sl.instances() {
			if in.port == port {
				return true
			}
		}
	}
	return false
}
