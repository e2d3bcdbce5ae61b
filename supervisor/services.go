package supervisor

import (
	"context"
	"fmt"
	"slices"

	"smoothserve/config"
	"smoothserve/upstream"
)

// Adding and removing services while the supervisor runs (a reload of the
// configuration): a service added starts at once, one removed is drained
// and stopped as at a stop of smoothserve.

// AddService adds service cfg (validated), whose rotation is set, after
// the others, and starts its instances if it is enabled; it returns at
// once (StartService waits until they are ready). A disabled service of
// the same name is replaced; a running one is an error. It is refused
// (ErrFrozen) while an upgrade hands over.
func (s *Supervisor) AddService(cfg *config.Service, set *upstream.Set) error {
	if cfg.Enabled && set == nil {
		return fmt.Errorf("supervisor: no upstream set for service %s", cfg.Name)
	}
	// Frozen, the state file the next smoothserve adopts from is written:
	// instances started now would be nobody's.
	s.stateMu.Lock()
	frozen := s.stateFrozen
	s.stateMu.Unlock()
	if frozen {
		return ErrFrozen
	}
	s.svcMu.Lock()
	defer s.svcMu.Unlock()
	if s.runCtx == nil || s.closed {
		return ErrNotRunning
	}
	sv := newService(s, cfg, set)
	next := slices.Clone(s.services)
	i := slices.IndexFunc(next, func(x *service) bool { return x.cfg().Name == cfg.Name })
	switch {
	case i >= 0 && next[i].cancel != nil:
		return fmt.Errorf("supervisor: service %s runs already", cfg.Name)
	case i >= 0:
		next[i] = sv
	default:
		next = append(next, sv)
	}
	s.services = next
	if cfg.Enabled {
		s.startService(sv)
	}
	return nil
}

// RemoveService stops service name, as at a stop of smoothserve (its new
// requests get 503 at once, requests in flight finish, its instances are
// drained and stopped), and forgets it. It returns once its instances have
// exited.
func (s *Supervisor) RemoveService(ctx context.Context, name string) error {
	s.svcMu.Lock()
	i := slices.IndexFunc(s.services, func(x *service) bool { return x.cfg().Name == name })
	if i < 0 {
		s.svcMu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownService, name)
	}
	sv := s.services[i]
	cancel := sv.cancel
	s.svcMu.Unlock()
	if cancel != nil {
		frozen := false
		sv.call(func() { frozen = sv.frozen })
		if frozen {
			return ErrFrozen
		}
		sv.set.SetStopped(true)
		cancel()
		select {
		case <-sv.loop:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to stop: %w", name, ctx.Err())
		}
	}
	s.svcMu.Lock()
	s.services = slices.DeleteFunc(slices.Clone(s.services), func(x *service) bool { return x == sv })
	s.svcMu.Unlock()
	s.changed()
	return nil
}
