package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"smoothserve/config"
	"smoothserve/handoff"
	"smoothserve/internal/procstat"
)

// Handing instances over to the next smoothserve (an upgrade) or taking
// them over from the last one (an upgrade, or a restart after a crash).
//
// The state file lists every instance with its identity (pid, start time,
// executable). It is written whenever the instances change, until Freeze;
// the next daemon adopts the instances it lists that are verifiably the
// same processes.

// ErrFrozen refuses operator commands while an upgrade hands over.
var ErrFrozen = errors.New("an upgrade of smoothserve is under way; try again when it is done")

// ErrRolloutUnderWay matches (errors.Is) Freeze's refusal while a service
// rolls: an upgrade may be asked again once the rollout ends.
var ErrRolloutUnderWay = errors.New("a rollout is under way")

// rolloutUnderWay is Freeze's refusal, which says which rollouts.
type rolloutUnderWay string

func (e rolloutUnderWay) Error() string        { return string(e) }
func (e rolloutUnderWay) Is(target error) bool { return target == ErrRolloutUnderWay }

// Handoff makes the supervisor keep its state in stateFile and, when prior
// is not nil, adopt the instances it lists instead of starting new ones.
// handedOver says that prior was written for this process by the one that
// hands over to it now (an upgrade; Freeze): an instance it had in
// rotation goes into rotation at once, verified to be the same process but
// not asked again whether it is ready — it was serving a moment ago. After
// a crash, or from an older file, every adopted instance answers its
// readiness check first. Call it before Run.
func (s *Supervisor) Handoff(stateFile string, prior *handoff.State, handedOver bool) {
	if stateFile != "" {
		s.stateOut = handoff.NewWriter(stateFile)
	}
	s.prior = prior
	s.handedOver = handedOver && prior != nil && prior.StatesExact
	if prior != nil && !prior.WrittenAt.IsZero() {
		// The file on disk already says this: no need to write it again
		// until something changes.
		s.stateKey, s.stateExact = stateKeys(prior)
	}
}

// Fingerprint identifies what an instance of svc is started with: its
// executable, arguments, environment, address and working directory. Each
// instance keeps the one it was started with, and the state file records
// it: after an upgrade, a service running an instance of another
// fingerprint than its settings' now is rolled (Changed). The other
// settings need no new process: a new instance_count starts or stops
// instances, and health checks, timeouts and the restart strategy apply
// from their next use.
func Fingerprint(svc *config.Service) string {
	parts := []string{svc.ExecutablePath, svc.ServerIP}
	parts = append(parts, "args")
	parts = append(parts, svc.Args...)
	parts = append(parts, "env")
	for _, k := range slices.Sorted(maps.Keys(svc.Env)) {
		parts = append(parts, k+"="+svc.Env[k])
	}
	// Only a working directory other than the executable's folder counts,
	// so that the fingerprints of daemons from before working_dir existed,
	// which ran every instance there, still match theirs: upgrading to
	// this version rolls no service. "workdir" has no '=', so it cannot be
	// read as one more variable of env.
	if svc.WorkingDir != filepath.Dir(svc.ExecutablePath) {
		parts = append(parts, "workdir", svc.WorkingDir)
	}
	return handoff.Fingerprint(parts...)
}

// Changed lists the services that run an instance started with other
// settings (Fingerprint) than the configuration's now: adopted from the
// prior state (recorded with each instance), whether the settings changed
// in the files or a rollout onto them failed before the upgrade. Instances
// this supervisor started run the settings now. Call it after Run has
// begun.
func (s *Supervisor) Changed() []string {
	var out []string
	for _, sv := range s.list() {
		if sv.cfg().Enabled && sv.runsOtherThan(Fingerprint(sv.cfg())) {
			out = append(out, sv.cfg().Name)
		}
	}
	return out
}

// runsOtherThan tells whether an instance of sv was started with settings
// other than those of fingerprint.
func (sv *service) runsOtherThan(fingerprint string) bool {
	other := false
	sv.call(func() {
		for _, sl := range sv.slots {
			if sl.inst != nil && sl.inst.fingerprint != fingerprint {
				other = true
			}
		}
	})
	return other
}

// priorStopped reports whether the process that handed over to this one
// had service name stopped by the operator.
func (s *Supervisor) priorStopped(name string) bool {
	return s.prior != nil && s.handedOver && slices.Contains(s.prior.Stopped, name)
}

// priorFor lists the prior instances of service name.
func (s *Supervisor) priorFor(name string) []handoff.Instance {
	if s.prior == nil {
		return nil
	}
	var out []handoff.Instance
	for _, in := range s.prior.Instances {
		if in.Service == name {
			out = append(out, in)
		}
	}
	return out
}

// adoptPrior takes over the prior instances of the service, slot by slot,
// where they are verifiably the processes recorded; on the run goroutine,
// before any slot starts. It returns the prior instances it did not take.
func (sv *service) adoptPrior() []handoff.Instance {
	var left []handoff.Instance
	cfg := sv.cfg()
	for _, in := range sv.sup.priorFor(cfg.Name) {
		if in.Slot < 0 || in.Slot >= len(sv.slots) {
			left = append(left, in)
			continue
		}
		sl := sv.slots[in.Slot]
		if primary, alt := sv.portPair(in.Slot); sl.inst != nil || (in.Port != primary && in.Port != alt) {
			left = append(left, in)
			continue
		}
		id, err := handoff.Verify(in)
		if err != nil {
			sv.note(slog.LevelWarn, "%s#%d pid %d not adopted: %v", cfg.Name, in.Slot, in.Pid, err)
			if errors.Is(err, handoff.ErrGone) {
				left = append(left, in) // what is left of its group is stopped (StopLeftovers)
			}
			continue
		}
		sl.port = in.Port
		inst := sv.newInstance(sl, in.Port)
		entry := in
		inst.adopt = &entry
		// Known from the start, so that the state file written before the
		// adoption settles still lists it.
		inst.pid, inst.startedAt = in.Pid, processStart(in.StartTime)
		inst.ident = id
		inst.fingerprint = in.Fingerprint
		if inst.fingerprint == "" { // a state file of an older version
			inst.fingerprint = sv.sup.prior.Services[cfg.Name]
		}
		sl.started = true
		sl.inst = inst
		sv.launch(inst)
	}
	return left
}

// adoptProcess takes over the running process in.adopt, and waits until it
// answers. On error nothing was changed in the process.
func (in *instance) adoptProcess() (process, error) {
	a := *in.adopt
	adoptErr := func(err error) error {
		return fmt.Errorf("adopting instance %s pid %d on :%d: %w", in.name, a.Pid, in.port, err)
	}
	p, err := handoff.Adopt(a, roomOf(in.ctx))
	if err != nil {
		return nil, adoptErr(err)
	}
	if !in.sv.sup.procs.add(p) {
		p.Close()
		return nil, adoptErr(errors.New("supervisor killed"))
	}
	if in.sv.sup.handedOver && a.State == StateReady.String() {
		in.sv.note(slog.LevelInfo, "%s pid %d adopted on :%d, in rotation as it was", in.name, p.Pid(), in.port)
		return p, nil
	}
	in.report(instanceEvent{state: StateStarting, pid: p.Pid()})
	if err := waitReady(in.ctx, p, in.addr, in.cfg.HealthCheck, in.cfg.StartTimeout, 0); err != nil { // running already: asked at once
		// Adopted but not answering: the slot starts a new one.
		err = in.notReady(p, err)
		p.Close()
		return nil, adoptErr(err)
	}
	in.sv.note(slog.LevelInfo, "%s pid %d adopted on :%d", in.name, p.Pid(), in.port)
	return p, nil
}

// processStart converts a /proc start time (clock ticks after boot) to a
// wall time; the zero time if it cannot.
func processStart(ticks uint64) time.Time {
	t, err := procstat.Stat{StartTime: ticks}.Started()
	if err != nil {
		return time.Time{}
	}
	return t
}

// StopLeftovers stops the prior instances no slot adopted (their service
// is gone, or has fewer instances now), and what is left of the process
// group of those that exited while no smoothserve watched them (a
// prefork server's workers, which hold its port; handoff.Leftover). After
// an upgrade, call it once the previous smoothserve has exited: until then
// it may still send them requests.
func (s *Supervisor) StopLeftovers(ctx context.Context) {
	s.leftMu.Lock()
	left := slices.Clone(s.leftovers)
	s.leftMu.Unlock()
	// They stay in the state file until stopped: a crash meanwhile must
	// not orphan them.
	defer func() {
		s.leftMu.Lock()
		s.leftovers = slices.DeleteFunc(s.leftovers, func(in handoff.Instance) bool {
			return slices.ContainsFunc(left, func(l handoff.Instance) bool { return l.Pid == in.Pid && l.StartTime == in.StartTime })
		})
		s.leftMu.Unlock()
		s.changed()
	}()
	var wg sync.WaitGroup
	for _, in := range left {
		wg.Go(func() {
			s.stopLeftover(ctx, in)
		})
	}
	wg.Wait()
}

// closed is a closed channel: a wait given it only counts.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// stopLeftover stops in, a prior instance no slot adopted, or what is left
// of its group if it exited.
func (s *Supervisor) stopLeftover(ctx context.Context, in handoff.Instance) {
	var p process
	why := "no longer configured"
	ap, err := handoff.Adopt(in, roomOf(s.killCtx))
	switch {
	case err == nil:
		defer ap.Close()
		p = ap
	case errors.Is(err, handoff.ErrGone):
		lo := handoff.LeftoverOf(in)
		if lo == nil {
			return
		}
		n, err := lo.WaitLeft(closed) // counted, not waited for
		if n == 0 || err != nil {
			return // nothing left, or nothing known to be its
		}
		why = fmt.Sprintf("what is left of its process group (%s): it exited while no smoothserve ran", processes(n))
		p = lo
	default:
		return // not ours any more
	}
	s.log.Info(fmt.Sprintf("stopping %s#%d pid %d: %s", in.Service, in.Slot, in.Pid, why))
	grace := s.termGrace
	if sv, err := s.find(in.Service); err == nil && sv.cfg().KillTimeout > 0 {
		grace = sv.cfg().KillTimeout // the service's kill_timeout, where it is still configured
	}
	overran, err := terminate(ctx, p, grace)
	switch {
	case err != nil:
		s.log.Error(fmt.Sprintf("stopping %s#%d pid %d: %v", in.Service, in.Slot, in.Pid, err))
	case overran > 0:
		s.log.Warn(fmt.Sprintf("stopped %s#%d pid %d: SIGKILL after %v to %s", in.Service, in.Slot, in.Pid, grace, overranWhat(p, overran)))
	default:
		s.log.Info(fmt.Sprintf("stopped %s#%d pid %d", in.Service, in.Slot, in.Pid))
	}
}

// Freeze readies the supervisor for an upgrade: it refuses while a rollout
// is under way; afterwards no instance is started, restarted or stopped (a
// crash only takes it out of rotation) until Thaw, and the state file is
// written one last time, for the next smoothserve.
func (s *Supervisor) Freeze() error {
	var busy []string
	var frozen []*service
	for _, sv := range s.list() {
		if !sv.cfg().Enabled {
			continue
		}
		sv.call(func() {
			if sv.rollout != nil {
				busy = append(busy, "a rollout of "+sv.cfg().Name+" is under way")
				return
			}
			sv.frozen = true
			sv.checksOff.Store(true)
			frozen = append(frozen, sv)
		})
	}
	if len(busy) > 0 {
		s.thaw(frozen)
		return rolloutUnderWay("cannot upgrade now: " + strings.Join(busy, ", ") + "; try again when it ends")
	}
	s.stateMu.Lock()
	s.stateFrozen = true
	err := s.writeState(true)
	s.stateMu.Unlock()
	if err != nil {
		s.Thaw()
		return fmt.Errorf("cannot upgrade now: %w", err)
	}
	return nil
}

// Thaw undoes Freeze after a failed upgrade: slots that lost their
// instance meanwhile start again.
func (s *Supervisor) Thaw() {
	s.stateMu.Lock()
	s.stateFrozen = false
	// The failed process may have written the file: write it afresh, and
	// remove its spare if it was killed.
	s.stateKey, s.stateExact = "", ""
	if s.stateOut != nil {
		s.stateOut.Sweep()
	}
	s.stateMu.Unlock()
	s.thaw(s.list())
	s.changed()
}

// thaw undoes Freeze for the enabled services of svs (a disabled one has
// no run goroutine to answer).
func (s *Supervisor) thaw(svs []*service) {
	for _, sv := range svs {
		if !sv.cfg().Enabled {
			continue
		}
		sv.call(func() {
			sv.frozen = false
			sv.checksOff.Store(false)
			for _, sl := range sv.slots {
				if sl.inst == nil && sl.next == nil && sv.wanted && !sv.stopping {
					sl.retryAt = time.Now()
				}
			}
		})
	}
}

// Detach lets go of every instance without stopping it, once the next
// smoothserve has taken them over: cancel Run's context after it, and Run
// returns at once.
func (s *Supervisor) Detach() {
	s.detached.Store(true)
}

// writeState writes the state file from the services' snapshots, when
// what a later smoothserve acts on changed since the last write — or, if
// exact (Freeze), anything but when and by whom it was written: the next
// process trusts the instances' states of such a file (StatesExact). It
// writes nothing while an enabled service has not published yet (its
// adopted instances would be missing): for Freeze, an error. The caller
// holds stateMu.
func (s *Supervisor) writeState(exact bool) error {
	if s.stateOut == nil {
		return nil
	}
	st := &handoff.State{Version: 1, DaemonPid: os.Getpid(), WrittenAt: time.Now(), Services: map[string]string{}, StatesExact: exact}
	for _, sv := range s.list() {
		snap := sv.snap.Load()
		if snap == initialSnapshot && sv.cfg().Enabled {
			if exact {
				return fmt.Errorf("service %s is still starting", sv.cfg().Name)
			}
			return nil
		}
		st.Services[sv.cfg().Name] = Fingerprint(sv.cfg())
		if snap.opStopped {
			st.Stopped = append(st.Stopped, sv.cfg().Name)
		}
		if len(snap.drained) > 0 {
			if st.Drained == nil {
				st.Drained = map[string][]int{}
			}
			st.Drained[sv.cfg().Name] = snap.drained
		}
		for _, sl := range snap.slots {
			if sl.Pid == 0 || sl.State == StateStopping {
				continue
			}
			in := handoff.Instance{Service: sv.cfg().Name, Slot: sl.Slot, Port: sl.Port, Pid: sl.Pid,
				State: sl.State.String(), Fingerprint: sl.fingerprint}
			id := sl.ident
			if id.StartTime == 0 {
				var err error
				if id, err = handoff.Identify(sl.Pid); err != nil {
					continue // exited meanwhile
				}
			}
			in.StartTime, in.Session, in.Exe = id.StartTime, &id.Session, id.Exe
			st.Instances = append(st.Instances, in)
		}
	}
	// Prior instances no slot took stay listed until StopLeftovers has
	// stopped them, never as ready: no process trusts them.
	s.leftMu.Lock()
	for _, in := range s.leftovers {
		in.State = "leftover"
		st.Instances = append(st.Instances, in)
	}
	s.leftMu.Unlock()
	// A file is written (the costliest part of a restart here, even
	// through a Writer) only when what the next smoothserve acts on changed:
	// not for an instance's State alone (starting, ready, draining),
	// which it only shows — unless exact.
	key, full := stateKeys(st)
	if key == s.stateKey && (!exact || full == s.stateExact) {
		return nil
	}
	if err := s.stateOut.Write(st); err != nil {
		return fmt.Errorf("writing the state file: %w", err)
	}
	s.stateKey, s.stateExact = key, full
	return nil
}

// stateKeys returns what st says that a later smoothserve acts on:
// everything but when and by whom it was written and each instance's
// State (key); and all of it but when and by whom (full).
func stateKeys(st *handoff.State) (key, full string) {
	c := *st
	c.WrittenAt, c.DaemonPid = time.Time{}, 0
	b, _ := json.Marshal(&c)
	full = string(b)
	c.StatesExact = false
	c.Instances = slices.Clone(st.Instances)
	for i := range c.Instances {
		c.Instances[i].State = ""
	}
	b, _ = json.Marshal(&c)
	return string(b), full
}

// keepState writes the state file whenever a service publishes, until ctx
// is done or Freeze.
func (s *Supervisor) keepState(ctx context.Context) {
	if s.stateOut == nil {
		return
	}
	for {
		changed := s.changedChan()
		s.stateMu.Lock()
		if !s.stateFrozen {
			if err := s.writeState(false); err != nil {
				s.log.Error(err.Error())
			}
		}
		s.stateMu.Unlock()
		select {
		case <-changed:
			// Coalesce a burst of changes into one write.
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
