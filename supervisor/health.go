package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"smoothserve/internal/nofile"
	"smoothserve/upstream"
)

// Health checks after start. With health_check set and
// health_check_interval above 0, each instance in rotation is checked every
// interval, as at its start: GET the path, a 2xx is a pass. One that fails
// health_check_fails checks in a row is unhealthy: it leaves rotation (its
// requests in flight finish) while another instance of the service is in
// it, and comes back at its first pass. When every instance is unhealthy
// they all stay in rotation: a check never leaves the service with nowhere
// to send requests. One unhealthy for unhealthy_restart_after is replaced
// as a crashed one is.
//
// Each instance has one checker goroutine (checkHealth) from ready until it
// leaves rotation for good (a drain or a loss: also when a rollout or a
// stop retires it, or Detach lets it go); it pauses while an upgrade hands
// over (Freeze). The checker only reports; the service's run goroutine
// decides (handleHealth, balance), and the instance's rotation applies it.

// maxCheckTimeout bounds one check after start; a shorter interval bounds it
// more, so that checks never overlap.
const maxCheckTimeout = 5 * time.Second

// healthChange is what a checker reports.
type healthChange int

const (
	healthNone    healthChange = iota
	healthFailing              // failed health_check_fails checks in a row
	healthPassing              // passed again, after failing
	healthOverdue              // still failing, unhealthy_restart_after after it began
)

// rotation is an instance's place in its service's rotation. The instance
// joins it once ready and leaves it for good when retired or lost (end);
// in between, the service takes it out while it fails its health check
// (setOut) or while the operator has its slot drained (setDrained), and
// puts it back. A Backend taken out never comes back, so coming back is a
// new Backend for the same process; the earlier ones finish their requests
// in flight, and are waited for by the drain.
//
// Ownership: mu guards the fields below it; the instance's goroutine, its
// service's run goroutine and Status call in.
type rotation struct {
	set  *upstream.Set
	name string // the service's
	slot int
	addr string

	mu        sync.Mutex
	cur       *upstream.Backend   // the last backend; in the set unless out or drained; nil before join
	out       bool                // the instance fails its health check
	drained   bool                // the operator drained the slot (smoothtool drain NAME#SLOT)
	ended     bool                // retired or lost: no change any more
	old       []*upstream.Backend // earlier backends that had requests in flight
	oldServed uint64              // requests answered by earlier backends no longer in old
}

// join puts the instance into rotation, once ready, unless it is out.
func (r *rotation) join() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = upstream.NewBackend(r.name, r.slot, r.addr)
	if r.in() {
		r.set.Add(r.cur)
	}
}

// in reports whether the instance belongs in the set; the caller holds mu.
func (r *rotation) in() bool { return !r.out && !r.drained }

// setOut takes the instance out of rotation for failing its health check
// (out) or puts it back; it reports whether that moved it. After end it
// does nothing.
func (r *rotation) setOut(out bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.cur == nil || r.out == out {
		return false
	}
	was := r.in()
	r.out = out
	return r.move(was)
}

// setDrained takes the instance out of rotation as the operator asked, or
// puts it back (unless it is out for failing its health check); it
// reports whether that moved it. Before join it only records the wish.
func (r *rotation) setDrained(drained bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.drained == drained {
		return false
	}
	was := r.in()
	r.drained = drained
	if r.cur == nil {
		return false
	}
	return r.move(was)
}

// move applies a change of out or drained to the set; was is whether the
// instance was in it. The caller holds mu.
func (r *rotation) move(was bool) bool {
	now := r.in()
	if now == was {
		return false
	}
	if !now {
		r.set.Remove(r.cur) // its requests in flight go on
		r.cur.CloseIdle()   // its pooled connections would only go stale
		return true
	}
	r.old = append(r.old, r.cur)
	r.old = slices.DeleteFunc(r.old, func(b *upstream.Backend) bool {
		// Out with nothing in flight: it will serve nothing more.
		if b.Inflight() == 0 {
			r.oldServed += b.Served()
			return true
		}
		return false
	})
	r.cur = upstream.NewBackend(r.name, r.slot, r.addr)
	r.set.Add(r.cur)
	return true
}

// inRotation reports whether the instance is in its service's rotation.
func (r *rotation) inRotation() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.ended && r.cur != nil && r.in()
}

// isOut reports whether the service took the instance out of rotation.
func (r *rotation) isOut() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out
}

// end takes the instance out of rotation for good and returns every
// backend it had, for a drain to wait for.
func (r *rotation) end() []*upstream.Backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	if r.cur == nil {
		return nil
	}
	r.set.Remove(r.cur)
	return append(slices.Clone(r.old), r.cur)
}

// inflight is the requests in flight to the instance, in rotation or not.
func (r *rotation) inflight() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, b := range r.backends() {
		n += b.Inflight()
	}
	return n
}

// served is the requests the instance answered.
func (r *rotation) served() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.oldServed
	for _, b := range r.backends() {
		n += b.Served()
	}
	return n
}

// backends is cur and old; the caller holds mu.
func (r *rotation) backends() []*upstream.Backend {
	if r.cur == nil {
		return r.old
	}
	return append(slices.Clone(r.old), r.cur)
}

// startChecks starts the instance's health checks if its settings ask for
// them; the function it returns stops them and waits until they have, so
// that no health report follows it.
func (in *instance) startChecks() (stop func()) {
	cfg := in.cfg
	if cfg.HealthCheck == "" || cfg.HealthCheckInterval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(in.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.checkHealth(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// checkHealth checks the instance every health_check_interval until ctx is
// done, and reports each change to the service.
func (in *instance) checkHealth(ctx context.Context) {
	cfg := in.cfg
	fails := max(cfg.HealthCheckFails, 1)
	timeout := min(cfg.HealthCheckInterval, maxCheckTimeout)
	tick := time.NewTicker(cfg.HealthCheckInterval)
	defer tick.Stop()
	failed := 0
	var since time.Time // when it became unhealthy; zero while healthy
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if in.sv.checksOff.Load() {
			continue // an upgrade hands over: the next smoothserve checks it
		}
		err := probe(ctx, in.addr, cfg.HealthCheck, timeout)
		if ctx.Err() != nil {
			return
		}
		var change healthChange
		switch {
		case nofile.Exhausted(err):
			// This process had no descriptor for the probe (a flood of
			// connections): the probe was not made, which says nothing of
			// the instance.
			in.sv.sup.warnNoDescriptors(in.name, err)
			continue
		case err == nil:
			failed = 0
			if !since.IsZero() {
				since, change = time.Time{}, healthPassing
			}
		case since.IsZero():
			if failed++; failed >= fails {
				since, change = time.Now(), healthFailing
			}
		case cfg.UnhealthyRestartAfter > 0 && time.Since(since) >= cfg.UnhealthyRestartAfter:
			change = healthOverdue
		}
		if change != healthNone {
			in.report(instanceEvent{health: change, err: err})
		}
	}
}

// handleHealth applies a checker's report; on the run goroutine.
func (sv *service) handleHealth(ev instanceEvent) {
	in := ev.inst
	if in.state != StateReady && in.state != StateUnhealthy {
		return // being drained already
	}
	if sv.frozen {
		// A check under way at Freeze: the state file says what the
		// instance was then, and the next process goes on from there.
		return
	}
	switch ev.health {
	case healthFailing:
		in.state, in.held = StateUnhealthy, false
		sv.note(slog.LevelWarn, "%s pid %d is unhealthy: %d health checks in a row failed, the last: %v",
			in.name, in.pid, max(in.cfg.HealthCheckFails, 1), ev.err)
	case healthPassing:
		in.state = StateReady
		sv.note(slog.LevelInfo, "%s pid %d is healthy again: its health check passes", in.name, in.pid)
	case healthOverdue:
		sv.replaceUnhealthy(in, ev.err)
	}
}

// balance takes the unhealthy instances out of rotation while a healthy
// one is in it, and puts them back when none is (or when they pass again);
// on the run goroutine, after every event. Instances being drained (or
// about to be: replacing), and a stopping service, are left alone; one in
// a slot the operator drained is out anyway, and does not count as healthy.
func (sv *service) balance() {
	if sv.stopping || !sv.wanted {
		return
	}
	var up []*instance
	healthy := false
	for _, sl := range sv.slots {
		for _, in := range []*instance{sl.inst, sl.next} {
			if in.up() {
				up = append(up, in)
				healthy = healthy || (in.state == StateReady && !sl.drained)
			}
		}
	}
	kept := 0
	for _, in := range up {
		sick := in.state == StateUnhealthy
		if !in.rot.setOut(sick && healthy) {
			continue
		}
		switch {
		case sick && healthy:
			sv.note(slog.LevelInfo, "%s pid %d out of rotation until its health check passes", in.name, in.pid)
		case sick:
			kept++
		default:
			sv.note(slog.LevelInfo, "%s pid %d back in rotation", in.name, in.pid)
		}
	}
	if kept > 0 {
		sv.note(slog.LevelWarn, "every ready instance of %s fails its health check: all %d stay in rotation, so that requests still have somewhere to go",
			sv.cfg().Name, len(up))
	}
}

// replaceUnhealthy replaces in, unhealthy for unhealthy_restart_after, as a
// crashed instance is: drained and stopped, then its slot starts again
// with backoff. Not during a rollout (which replaces it anyway), an upgrade
// or a stop; and while it is in rotation (every instance is unhealthy),
// only once every other slot has an instance up, so that such
// replacements go one at a time. On the run goroutine.
func (sv *service) replaceUnhealthy(in *instance, last error) {
	after := in.cfg.UnhealthyRestartAfter
	switch {
	case in.replacing, in.state != StateUnhealthy, in.home.inst != in, after <= 0:
		return
	case sv.stopping || !sv.wanted || sv.frozen || sv.rollout != nil:
		return
	case !in.rot.isOut() && !sv.othersUp(in.home):
		if !in.held {
			in.held = true
			sv.note(slog.LevelWarn, "%s pid %d unhealthy for %v: replaced once every other instance of %s is up",
				in.name, in.pid, after, sv.cfg().Name)
		}
		return
	}
	in.replacing = true
	in.home.nextWhy = "unhealthy"
	in.replaceErr = fmt.Errorf("%s pid %d unhealthy for %v: %w", in.name, in.pid, after, last)
	sv.note(slog.LevelWarn, "%v: replacing it", in.replaceErr)
	close(in.replace)
}

// othersUp reports whether every slot but sl has its instance up.
func (sv *service) othersUp(sl *slot) bool {
	for _, o := range sv.slots {
		if o != sl && !o.inst.up() {
			return false
		}
	}
	return true
}

// up reports whether in (nil: none) runs ready, healthy or not, and is
// not about to be drained for failing; on the run goroutine.
func (in *instance) up() bool {
	return in != nil && !in.replacing && (in.state == StateReady || in.state == StateUnhealthy)
}

// warnNoDescriptors logs that a health check of instance was not made for
// want of a descriptor, at most once in nofile.WarnEvery: while
// descriptors lack, every check of every instance fails so.
func (s *Supervisor) warnNoDescriptors(instance string, err error) {
	if !s.noFDsSaid.Due() {
		return // said lately, or another check says it
	}
	s.log.Warn("health check not made: out of file descriptors (said once in 10s)", "instance", instance, "err", err)
}
