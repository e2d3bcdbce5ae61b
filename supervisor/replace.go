package supervisor

import (
	"errors"
	"fmt"
	"time"
)

// The steps of a rollout, one slot each: replace the slot's instance
// surging (the replacement starts beside it, on the other port of the
// slot's pair) or in place (it stops first); add a slot, or drop slots,
// when instance_count changed. Every change to the slots is made on the
// service's run goroutine, through calls; the rollout's goroutine waits in
// between.

// surge starts the replacement of slot i on the other port of its pair,
// waits until it is in rotation, then drains and stops the old instance:
// the slot always has a ready instance.
func (run *rolloutRun) surge(i int) (RolledInstance, error) {
	sv := run.sv
	var next *instance
	if !sv.call(func() {
		sl := sv.slots[i]
		next = sv.startReplacement(sl, sv.surgePort(sl))
	}) {
		return RolledInstance{}, errAborted
	}
	if err := run.awaitReady(next); err != nil {
		return RolledInstance{}, err
	}
	return run.finishReplacement(next, 0)
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
		if old = sl.inst; old != nil {
			oldPid = old.pid
			sl.retire(old)
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
		next = sv.startReplacement(sl, sv.inPlacePort(sl))
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
	return run.finishReplacement(next, oldPid)
}

// startReplacement starts a rollout's replacement for sl on port; on the
// run goroutine.
func (sv *service) startReplacement(sl *slot, port int) *instance {
	next := sv.newInstance(sl, port)
	sl.next = next
	sv.launch(next)
	return next
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
		run.sv.call(func() {
			if sl := next.home; sl.next == next {
				sl.retire(next)
			} else {
				next.stop() // it has exited
			}
		})
		return errAborted
	}
}

// finishReplacement makes next, a replacement in rotation, the instance of
// its slot, and reports the step once the instance it replaces is drained
// and stopped. Surging, that one is still the slot's instance; in place it
// is gone already, and oldPid was its pid.
func (run *rolloutRun) finishReplacement(next *instance, oldPid int) (RolledInstance, error) {
	sv := run.sv
	var old *instance
	lost := false
	sv.call(func() {
		sl := next.home
		if sl.next != next { // lost between ready and now
			lost = true
			return
		}
		if old = sl.inst; old != nil {
			oldPid = old.pid
			sl.retire(old)
		}
		sv.takeSlot(sl, next)
	})
	if lost {
		return RolledInstance{}, run.replacementFailed(next)
	}
	if old != nil {
		<-old.exited // drained and stopped; bounded by stop_timeout and the SIGTERM grace
	}
	return next.rolled(oldPid), nil
}

// takeSlot makes a rollout's ready replacement the slot's instance; on the
// run goroutine.
func (sv *service) takeSlot(sl *slot, next *instance) {
	sl.inst, sl.next = next, nil
	sl.port = next.port
	sl.restarted("rollout")
	sl.started = true
	sl.retryAt, sl.lastErr = time.Time{}, nil
	sl.readyAt = time.Now()
	sl.backoff = minBackoff
}

// rolled is the step of a rollout that made in, ready, the instance of its
// slot in place of the process oldPid (0: none).
func (in *instance) rolled(oldPid int) RolledInstance {
	return RolledInstance{Slot: in.slot, OldPid: oldPid, NewPid: in.readyPid, Port: in.port, ReadyMS: in.readyIn.Milliseconds()}
}

func (run *rolloutRun) replacementFailed(next *instance) error {
	<-next.exited
	err := next.exitErr
	if err == nil {
		err = errors.New("it exited")
	}
	return fmt.Errorf("replacement %s on :%d: %w", next.name, next.port, err)
}

// addSlot starts an instance for a new slot i (instance_count grew).
func (run *rolloutRun) addSlot(i int) (RolledInstance, error) {
	sv := run.sv
	var in *instance
	if !sv.call(func() {
		sl := sv.newSlot(i)
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
	return in.rolled(0), nil
}

// dropSlots drains and stops the instances of the slots from n on
// (instance_count shrank) and waits until they are gone.
func (run *rolloutRun) dropSlots(n int) error {
	sv := run.sv
	var gone []*instance
	if !sv.call(func() {
		for _, sl := range sv.slots[n:] {
			sl.retire(sl.inst)
			sl.retire(sl.next)
			gone = append(gone, sl.retiring...)
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
