package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"smoothserve/control/api"
)

// Draining one instance (smoothtool drain NAME#SLOT): the operator takes a
// slot out of rotation to look at its instance, which keeps running, and
// puts it back. The wish belongs to the slot, not to a process: every
// instance the slot starts (a rollout's replacement, a restart after a
// crash) stays out of rotation until the slot is undrained, and the state
// file carries it to the next smoothserve.

// DrainInstance takes the instance of service name's slot out of rotation:
// its requests in flight finish, it keeps running. It refuses to take out
// the last instance of the service in rotation unless force.
func (s *Supervisor) DrainInstance(ctx context.Context, name string, slot int, force bool) error {
	sv, err := s.find(name)
	if err != nil {
		return err
	}
	if !sv.call(func() { err = sv.drainSlot(slot, force) }) {
		return ErrNotRunning
	}
	return err
}

// UndrainInstance puts a drained slot back: its instance, if one is up,
// joins rotation once it answers its readiness check now (else it stays
// out, and UndrainInstance says why); one still starting joins when ready.
func (s *Supervisor) UndrainInstance(ctx context.Context, name string, index int) error {
	sv, err := s.find(name)
	if err != nil {
		return err
	}
	var addr, check, who string
	if !sv.call(func() {
		var sl *slot
		if sl, err = sv.slotAt(index); err != nil || !sl.drained {
			return
		}
		if in := sl.inst; in.up() {
			addr, check, who = in.addr, in.cfg.HealthCheck, fmt.Sprintf("%s pid %d", in.name, in.pid)
		}
	}) {
		return ErrNotRunning
	}
	if err != nil {
		return err
	}
	if addr != "" {
		ctx = withRoom(ctx, roomOf(s.killCtx)) // an operator's probe makes room as the supervisor's do
		if err := probe(ctx, addr, check, healthTimeout); err != nil {
			return fmt.Errorf("%s %w (%v): it stays out of rotation", who, api.ErrNotAnswering, err)
		}
	}
	if !sv.call(func() { err = sv.undrainSlot(index) }) {
		return ErrNotRunning
	}
	return err
}

// slotAt is the service's slot i, or an error naming the slots there are;
// on the run goroutine.
func (sv *service) slotAt(i int) (*slot, error) {
	if i < 0 || i >= len(sv.slots) {
		return nil, fmt.Errorf("%w %s#%d: %s has slots 0 to %d", api.ErrUnknownInstance, sv.cfg().Name, i, sv.cfg().Name, len(sv.slots)-1)
	}
	return sv.slots[i], nil
}

// drainSlot marks slot i drained and takes its instances out of rotation;
// on the run goroutine.
func (sv *service) drainSlot(i int, force bool) error {
	sl, err := sv.slotAt(i)
	if err != nil || sl.drained {
		return err
	}
	if sv.frozen {
		return ErrFrozen
	}
	if !force && (sv.lastInRotation(sl) || !sv.otherUndrained(sl)) {
		return fmt.Errorf("%s#%d is %w: its requests would have nowhere to go (drain it anyway with --force)", sv.cfg().Name, i, api.ErrLastInstance)
	}
	sl.drained = true
	for _, in := range []*instance{sl.inst, sl.next} {
		if in != nil && in.rot.setDrained(true) {
			sv.note(slog.LevelInfo, "%s pid %d out of rotation, as the operator asked; it keeps running", in.name, in.pid)
		}
	}
	sv.balance() // an unhealthy one may be all that is left to serve
	return nil
}

// otherUndrained reports whether a slot other than sl is not drained: one
// that serves, or will once its instance is up again (a crash, a start);
// on the run goroutine.
func (sv *service) otherUndrained(sl *slot) bool {
	for _, o := range sv.slots {
		if o != sl && !o.drained {
			return true
		}
	}
	return false
}

// shrinkKeepsOnlyDrained reports whether instance_count n would drop every
// slot that is not drained, keeping drained ones only: nothing would serve;
// on the run goroutine.
func (sv *service) shrinkKeepsOnlyDrained(n int) bool {
	if n >= len(sv.slots) {
		return false
	}
	for _, sl := range sv.slots[:n] {
		if !sl.drained {
			return false
		}
	}
	return slices.ContainsFunc(sv.slots[n:], func(sl *slot) bool { return !sl.drained })
}

// undrainSlot clears slot i's drain and puts its instances back in
// rotation where nothing else keeps them out; on the run goroutine.
func (sv *service) undrainSlot(i int) error {
	sl, err := sv.slotAt(i)
	if err != nil || !sl.drained {
		return err
	}
	if sv.frozen {
		return ErrFrozen
	}
	sl.drained = false
	for _, in := range []*instance{sl.inst, sl.next} {
		if in != nil && in.rot.setDrained(false) {
			sv.note(slog.LevelInfo, "%s pid %d back in rotation, as the operator asked", in.name, in.pid)
		}
	}
	sv.balance()
	return nil
}

// lastInRotation reports whether sl's instance is in rotation and no other
// slot's is; on the run goroutine.
func (sv *service) lastInRotation(sl *slot) bool {
	mine := false
	for _, o := range sv.slots {
		for _, in := range []*instance{o.inst, o.next} {
			if in == nil || !in.rot.inRotation() {
				continue
			}
			if o != sl {
				return false
			}
			mine = true
		}
	}
	return mine
}

// drainedSlots lists the drained slots, for the state file; on the run
// goroutine.
func (sv *service) drainedSlots() []int {
	var out []int
	for _, sl := range sv.slots {
		if sl.drained {
			out = append(out, sl.index)
		}
	}
	return out
}

// restoreDrained marks the slots the prior smoothserve had drained; on the
// run goroutine, before any slot starts. A service a reload added again
// starts with none drained: the prior state is the start's, long gone.
func (sv *service) restoreDrained() {
	for _, i := range sv.sup.priorDrained(sv.cfg().Name) {
		if i >= 0 && i < len(sv.slots) {
			sv.slots[i].drained = true
		}
	}
	if d := sv.drainedSlots(); len(d) > 0 {
		sv.note(slog.LevelInfo, "slots %v of %s stay drained, as before: out of rotation until smoothtool undrain", d, sv.cfg().Name)
	}
}

// priorDrained is the slots of service name the prior smoothserve had
// drained, the first time it is asked for a service; nil after.
func (s *Supervisor) priorDrained(name string) []int {
	s.leftMu.Lock()
	defer s.leftMu.Unlock()
	if s.prior == nil || s.drainTaken[name] {
		return nil
	}
	if s.drainTaken == nil {
		s.drainTaken = map[string]bool{}
	}
	s.drainTaken[name] = true
	return s.prior.Drained[name]
}

// shownState is the state Status shows for in, an instance of sl: drained
// while up in a drained slot.
func (sl *slot) shownState(in *instance) State {
	if sl.drained && in.up() && slices.Contains([]*instance{sl.inst, sl.next}, in) {
		return StateDrained
	}
	return in.state
}
