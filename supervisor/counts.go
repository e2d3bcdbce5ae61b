package supervisor

import (
	"maps"
	"slices"
)

// What each slot of a service counted: its restarts by reason and the
// requests its instances answered. The supervisor is their one owner;
// Status (the RESTARTS and SERVED columns) and Counts (the metrics, and
// what an upgrade hands to the next smoothserve) both read them here.
//
// A slot's counts are the service's run goroutine's (tally). They outlive
// the slot's processes, a stop of the service (smoothtool stop NAME) and
// the slot itself (a smaller instance_count): a counter never goes back or
// disappears while the service exists. The counts of the smoothserve
// processes before this one (GoOnFrom: an upgrade hands them over) are
// added to this process's, so they go on across upgrades, for a stopped
// service too.

// SlotCounts is what one slot of a service counted, over every process
// that served it, in this smoothserve and those before it (GoOnFrom).
type SlotCounts struct {
	Service string
	Slot    int
	// Restarts are the processes started for the slot after its first,
	// by why: "crash" (the process exited or was lost), "unhealthy"
	// (replaced after unhealthy_restart_after), "rollout" (a rolling
	// restart), "start" (the service started again after a stop).
	Restarts map[string]uint64
	Served   uint64 // requests the slot's instances answered
}

// tally is what one slot counted in this smoothserve process. It belongs
// to the service's run goroutine; restarts is replaced at each restart,
// never modified, so that the snapshots share it.
type tally struct {
	restarts map[string]uint64
	served   uint64 // by the slot's processes that left rotation; those in it are read live
}

// newSlot makes slot i of the service, with the counts slot i had, if it
// had one before (a smaller instance_count dropped it); on the run
// goroutine.
func (sv *service) newSlot(i int) *slot {
	t := sv.tallies[i]
	if t == nil {
		if sv.tallies == nil {
			sv.tallies = map[int]*tally{}
		}
		t = &tally{}
		sv.tallies[i] = t
	}
	return &slot{index: i, backoff: minBackoff, tally: t}
}

// restarted counts one restart of sl, for why; on the run goroutine.
func (sl *slot) restarted(why string) {
	m := maps.Clone(sl.tally.restarts)
	if m == nil {
		m = map[string]uint64{}
	}
	m[why]++
	sl.tally.restarts = m
}

// talliesNow is a copy of the service's tallies, for a snapshot; on the
// run goroutine.
func (sv *service) talliesNow() map[int]tally {
	out := make(map[int]tally, len(sv.tallies))
	for i, t := range sv.tallies {
		out[i] = *t
	}
	return out
}

// GoOnFrom makes prior, the counts of the smoothserve that handed over to
// this one (its Counts, at an upgrade), the base of this process's: Status
// and Counts add them. A later call replaces an earlier one (its counts
// include them). Counts of a service this process does not have are
// dropped.
func (s *Supervisor) GoOnFrom(prior []SlotCounts) {
	by := map[string]map[int]SlotCounts{}
	for _, c := range prior {
		if by[c.Service] == nil {
			by[c.Service] = map[int]SlotCounts{}
		}
		by[c.Service][c.Slot] = c
	}
	for _, sv := range s.list() {
		base := by[sv.cfg().Name] // nil: none
		sv.base.Store(&base)
	}
}

// Counts reports the counts of every slot each enabled service has
// counted (a stopped service's too), in configuration and slot order.
func (s *Supervisor) Counts() []SlotCounts {
	var out []SlotCounts
	for _, sv := range s.list() {
		if !sv.cfg().Enabled {
			continue
		}
		snap := sv.snap.Load()
		counts := sv.counted(snap)
		for _, sl := range snap.slots {
			if sl.rot != nil {
				counts[sl.Slot].Served += sl.rot.served()
			}
		}
		for _, i := range slices.Sorted(maps.Keys(counts)) {
			out = append(out, *counts[i])
		}
	}
	return out
}

// counted is what each slot of the service counted, as of snap, with the
// previous processes' counts: all but what its instances in rotation
// answered, which are read live. Every slot snap shows has an entry.
func (sv *service) counted(snap *serviceSnapshot) map[int]*SlotCounts {
	out := map[int]*SlotCounts{}
	of := func(i int) *SlotCounts {
		c := out[i]
		if c == nil {
			c = &SlotCounts{Service: sv.cfg().Name, Slot: i, Restarts: map[string]uint64{}}
			out[i] = c
		}
		return c
	}
	add := func(i int, restarts map[string]uint64, served uint64) {
		c := of(i)
		for why, n := range restarts {
			c.Restarts[why] += n
		}
		c.Served += served
	}
	if base := sv.base.Load(); base != nil {
		for i, b := range *base {
			add(i, b.Restarts, b.Served)
		}
	}
	for i, t := range snap.tallies {
		add(i, t.restarts, t.served)
	}
	for _, sl := range snap.slots {
		of(sl.Slot)
	}
	return out
}

// restartsOf is the number of restarts c counted, and them by reason, as
// InstanceStatus shows them.
func restartsOf(c *SlotCounts) (int, map[string]int) {
	if len(c.Restarts) == 0 {
		return 0, nil
	}
	n, by := 0, make(map[string]int, len(c.Restarts))
	for why, k := range c.Restarts {
		n += int(k)
		by[why] = int(k)
	}
	return n, by
}
