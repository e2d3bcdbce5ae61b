package supervisor

import (
	"slices"

	"smoothserve/handoff"
)

// Which port a slot's instance listens on. Slot i has a pair of ports,
// start_instance_port+i and start_instance_port+instance_count+i: a surge
// rollout starts the slot's replacement on the port of the pair its
// instance does not use (and back on the next rollout), so that the two
// run side by side.

// portPair is the pair of ports of slot i: its primary port, and the
// alternate one a surge rollout takes turns with.
func (sv *service) portPair(i int) (primary, alt int) {
	cfg := sv.cfg()
	return cfg.InstancePort(i, false), cfg.InstancePort(i, true)
}

// surgePort is the port for a surge replacement of sl: the other port of
// its pair, or newPairPort when its pair moved.
func (sv *service) surgePort(sl *slot) int {
	primary, alt := sv.portPair(sl.index)
	switch sl.port {
	case primary:
		return alt
	case alt:
		return primary
	}
	return sv.newPairPort(sl)
}

// inPlacePort is the port for an in-place replacement of sl: its own, or
// newPairPort when its pair moved (or the slot is new).
func (sv *service) inPlacePort(sl *slot) int {
	if primary, alt := sv.portPair(sl.index); sl.port == primary || sl.port == alt {
		return sl.port
	}
	return sv.newPairPort(sl)
}

// newPairPort is the port for the replacement of sl when the slot's port is
// not in its pair (start_instance_port or instance_count changed): the
// primary one, unless one of the service's instances holds it.
func (sv *service) newPairPort(sl *slot) int {
	primary, alt := sv.portPair(sl.index)
	if sv.portHeld(primary) {
		return alt
	}
	return primary
}

// portBesidePrior is the port of sl's pair to start an instance on when
// none was adopted for it: the primary one, unless an instance of the
// prior state runs there (one not adopted is stopped only once the old
// daemon has exited: after a surge rollout and a new instance_count, an
// old instance may sit on this slot's primary port) or an adopted one
// does.
func (sv *service) portBesidePrior(sl *slot) int {
	primary, alt := sv.portPair(sl.index)
	held := func(port int) bool {
		if sv.portHeld(port) {
			return true
		}
		return sv.sup.prior != nil && slices.ContainsFunc(sv.sup.prior.Instances, func(in handoff.Instance) bool { return in.Port == port })
	}
	if held(primary) && !held(alt) {
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
