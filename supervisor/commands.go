package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"smoothserve/config"
	"smoothserve/control/api"
)

// The operator's commands on services: roll them (Restart, Apply), stop
// and start them. Each reaches a service's run goroutine over calls and
// waits for the outcome.

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
	for _, sv := range s.list() {
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

// Apply rolls service cfg.Name onto new settings cfg (which must have
// passed config validation): every instance is replaced by one started with
// them, and instance_count may grow or shrink. A rollout under way is let
// finish first: the settings changed after it began. A rollout that does
// not succeed puts the settings back (the instances it replaced already
// go on running): a slot restarted afterwards starts with the old ones.
func (s *Supervisor) Apply(ctx context.Context, cfg *config.Service, trigger string) (*Rollout, error) {
	sv, err := s.find(cfg.Name)
	if err != nil {
		return nil, err
	}
	return sv.restart(ctx, trigger, cfg)
}

// find returns the enabled service called name.
func (s *Supervisor) find(name string) (*service, error) {
	for _, sv := range s.list() {
		if sv.cfg().Name == name {
			if !sv.cfg().Enabled {
				return nil, fmt.Errorf("%w: %s (enabled: false in %s)", ErrDisabled, name, sv.cfg().File)
			}
			return sv, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownService, name)
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
		for _, sv := range s.list() {
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
					sl.nextWhy = "start"
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
		var failed error
		if err := s.waitFor(ctx, func() bool {
			failed = sv.startFailed()
			return failed != nil || sv.readyCount() >= sv.cfg().InstanceCount
		}, func() string {
			return fmt.Sprintf("waiting for %s: %d of %d ready", sv.cfg().Name, sv.readyCount(), sv.cfg().InstanceCount)
		}); err != nil {
			return err
		}
		if failed != nil {
			retry := "smoothserve tries again with backoff"
			if errors.Is(failed, ErrPortInUse) {
				retry += " until the port is free"
			}
			return fmt.Errorf("an instance of %s cannot start (%w); %s%s", sv.cfg().Name, failed, retry,
				api.EndOfLog(sv.cfg().Name, sv.logTail(logTailLines)))
		}
	}
	return nil
}

// Retune makes cfg (valid, of a service that runs) the settings of its
// service without replacing an instance: for a change that no instance
// runs with (its hosts, TLS, the proxy's limits, what auto_restart
// watches), which the daemon decides. A rollout under way is let finish
// first, so that its end cannot put the settings before cfg back.
func (s *Supervisor) Retune(ctx context.Context, cfg *config.Service) error {
	sv, err := s.find(cfg.Name)
	if err != nil {
		return err
	}
	for {
		var busy *rolloutRun
		ok := sv.call(func() {
			if err = sv.unavailable(); err != nil {
				return
			}
			if busy = sv.rollout; busy == nil {
				sv.setCfg(cfg)
			}
		})
		if !ok {
			return ErrNotRunning
		}
		if err != nil || busy == nil {
			return err
		}
		select {
		case <-busy.done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the rollout of %s under way: %w", cfg.Name, ctx.Err())
		}
	}
}
