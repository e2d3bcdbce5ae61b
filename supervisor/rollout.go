package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"smoothserve/config"
	"smoothserve/internal/logtail"
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
	// prev is the settings before a rollout onto new ones (nil: none):
	// a rollout that does not succeed puts them back.
	prev *config.Service
}

var errAborted = errors.New("aborted: the service is stopping")

// restart begins a rollout (onto newCfg, if not nil) or joins the one under
// way, and waits for its outcome.
func (sv *service) restart(ctx context.Context, trigger string, newCfg *config.Service) (*Rollout, error) {
	var run *rolloutRun
	for {
		var err error
		var busy *rolloutRun
		var applied *Rollout
		ok := sv.call(func() {
			if err = sv.unavailable(); err != nil {
				return
			}
			switch {
			case !sv.wanted && newCfg != nil:
				applied, err = sv.applyStopped(trigger, newCfg)
			case !sv.wanted:
				err = fmt.Errorf("service %s is stopped: start it instead", sv.cfg().Name)
			case sv.rollout != nil && newCfg == nil:
				run = sv.rollout // one rollout at a time: join it
			case sv.rollout != nil:
				busy = sv.rollout
			case newCfg != nil && sv.shrinkKeepsOnlyDrained(newCfg.InstanceCount):
				err = fmt.Errorf("instance_count %d would stop every instance of %s that is not drained (smoothtool drain) and keep only drained ones: undrain one of slots 0 to %d first",
					newCfg.InstanceCount, sv.cfg().Name, newCfg.InstanceCount-1)
			default:
				run = sv.beginRollout(trigger, newCfg)
			}
		})
		if !ok {
			return nil, ErrNotRunning
		}
		if err != nil || applied != nil {
			return applied, err
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
	r := cloneRollout(&run.rep)
	if r.Outcome != RolloutOK {
		return r, fmt.Errorf("%w: %s", ErrRolloutFailed, r.Error)
	}
	return r, nil
}

// unavailable is why the service takes no new settings now: it is
// stopping, or an upgrade froze it; nil when it does. On the run
// goroutine.
func (sv *service) unavailable() error {
	switch {
	case sv.stopping:
		return ErrNotRunning
	case sv.frozen:
		return ErrFrozen
	}
	return nil
}

// beginRollout starts a rollout, onto newCfg if not nil; on the run
// goroutine.
func (sv *service) beginRollout(trigger string, newCfg *config.Service) *rolloutRun {
	ctx, cancel := context.WithCancel(sv.sup.killCtx)
	run := &rolloutRun{sv: sv, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	if newCfg != nil {
		run.prev = sv.cfg()
		sv.setCfg(newCfg)
	}
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
	sv.last = cloneRollout(&run.rep)
	sv.note(slog.LevelInfo, "rolling restart of %s (%s), asked by %s", sv.cfg().Name, run.rep.Strategy, trigger)
	go run.run()
	return run
}

// applyStopped makes cfg the settings of the service, which the operator
// stopped: nothing runs to roll, and its next start starts
// cfg.InstanceCount instances of cfg. Before, a reload left the old
// settings in place, and the start ran those. On the run goroutine.
func (sv *service) applyStopped(trigger string, cfg *config.Service) (*Rollout, error) {
	for _, sl := range sv.slots {
		if sl.inst != nil || sl.next != nil || len(sl.retiring) > 0 {
			return nil, fmt.Errorf("service %s is still stopping: apply its settings once it has stopped", cfg.Name)
		}
	}
	sv.setCfg(cfg)
	n := cfg.InstanceCount
	if n < len(sv.slots) {
		sv.slots = sv.slots[:n:n]
	}
	for i := len(sv.slots); i < n; i++ {
		sv.slots = append(sv.slots, sv.newSlot(i))
	}
	for _, sl := range sv.slots {
		sl.port = cfg.InstancePort(sl.index, false)
	}
	sv.publish()
	sv.note(slog.LevelInfo, "service %s is stopped: its new settings (%s) run at its start", cfg.Name, trigger)
	now := time.Now()
	return &Rollout{Service: cfg.Name, Trigger: trigger, Strategy: cfg.RestartStrategy, StartedAt: now, FinishedAt: now, Outcome: RolloutKept}, nil
}

// setCfg makes cfg the service's settings; on the run goroutine.
func (sv *service) setCfg(cfg *config.Service) {
	sv.conf.Store(cfg)
	sv.set.SetStartTimeout(cfg.StartTimeout)
	sv.set.SetMaxBodySize(cfg.MaxBodySize)
	sv.set.SetResponseHeaderTimeout(cfg.ResponseHeaderTimeout)
	sv.set.SetCompress(cfg.Compress)
}

// cloneRollout is a copy of r that shares no Instances with it: a
// published Rollout never changes, while a rollout's own report grows.
func cloneRollout(r *Rollout) *Rollout {
	c := *r
	c.Instances = slices.Clone(r.Instances)
	return &c
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
	final := cloneRollout(&run.rep)
	sv.call(func() {
		if run.prev != nil && final.Outcome != RolloutOK {
			// The service stays as it was: a slot restarted from now on
			// starts with the settings it had before.
			sv.setCfg(run.prev)
		}
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
	if have > cfg.InstanceCount {
		// The slots dropped go first: the pair of ports of a slot kept
		// (start+i, start+count+i) may hold one of theirs now, where its
		// surge replacement starts.
		if err := run.dropSlots(cfg.InstanceCount); err != nil {
			return err
		}
		have = cfg.InstanceCount
	}
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
		rep := cloneRollout(&run.rep)
		sv.call(func() { sv.last = rep })
	}
	return nil
}

// logTail returns the last n lines of the service's log file.
func (sv *service) logTail(n int) []string {
	return logtail.Lines(filepath.Join(sv.sup.cfg.LogDir, sv.cfg().Name+".log"), 0, n)
}
