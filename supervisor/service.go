package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"smoothserve/config"
	"smoothserve/handoff"
	"smoothserve/upstream"
)

// Restart backoff: a slot whose process fails waits minBackoff before the
// next start, twice as long after each further failure, up to maxBackoff; an
// instance that stayed ready for backoffReset starts the count over.
const (
	minBackoff   = 100 * time.Millisecond
	maxBackoff   = 30 * time.Second
	backoffReset = 60 * time.Second
)

// service keeps the instances of one service running.
//
// Ownership: the slots, their counts (tallies), and the view fields of
// every instance, belong to the run goroutine, the only one to start
// instances, restart them, or tell them to stop. Instances report to it
// over events; operator commands and the rollout goroutine reach it over
// calls (closures it runs). It publishes what Status shows through snap,
// which only it writes. base, the previous smoothserve's counts, is
// written only by Supervisor.GoOnFrom. logMu guards logFile, shared by the
// instances' goroutines to append lines.
type service struct {
	sup  *Supervisor
	conf atomic.Pointer[config.Service] // written only by the run goroutine (a rollout applying new settings)
	set  *upstream.Set
	log  *slog.Logger

	cancel context.CancelFunc // ends run; set by startService, under Supervisor.svcMu
	events chan instanceEvent
	calls  chan func()
	loop   chan struct{} // closed when the run goroutine has returned
	snap   atomic.Pointer[serviceSnapshot]

	// Owned by the run goroutine.
	slots    []*slot
	removed  []*slot     // slots dropped by a smaller instance_count, until their instances are gone
	live     int         // instance goroutines that have not reported their exit
	wanted   bool        // the operator wants it running (smoothtool stop NAME clears it)
	frozen   bool        // an upgrade hands over: nothing starts, restarts or stops
	stopping bool        // smoothserve is stopping: nothing starts again
	rollout  *rolloutRun // the rollout under way, if any
	last     *Rollout    // the last rollout, finished or not (a copy is published)
	// tallies are the counts of each slot the service has had, by index,
	// kept when the slot is dropped (counts.go).
	tallies map[int]*tally

	// base is the counts of the smoothserve processes before this one,
	// by slot (GoOnFrom): replaced whole, never modified.
	base atomic.Pointer[map[int]SlotCounts]

	// checksOff pauses the health checks after start while an upgrade
	// hands over (frozen); the instances' checkers read it.
	checksOff atomic.Bool

	logMu   sync.Mutex
	logFile *os.File
}

// slot is one of the InstanceCount places of a service and the history of
// the processes that served it.
type slot struct {
	index int
	port  int // where the slot's instance listens; a surge rollout moves it to the other port of the pair

	inst     *instance   // current lifetime; nil in backoff (or between the stop and start of an in-place replacement)
	next     *instance   // a rollout's replacement, until it takes the slot
	retiring []*instance // instances replaced and being drained and stopped

	// started: a process was started (or adopted) for the slot, so the
	// next one is a restart; by the smoothserve before this one, for a
	// service it had stopped (the slot's next start is a "start").
	started bool
	tally   *tally        // the slot's counts (counts.go), the service's tallies[index]
	backoff time.Duration // wait before the next start after a failure
	retryAt time.Time     // in backoff: when to start again
	readyAt time.Time     // when the current instance became ready
	lastErr error         // why the last lifetime failed; cleared when ready
	nextWhy string        // why the next start is (SlotCounts.Restarts), if not a crash
	drained bool          // the operator took the slot out of rotation (drain.go)
}

func newService(sup *Supervisor, cfg *config.Service, set *upstream.Set) *service {
	sv := &service{
		sup:    sup,
		set:    set,
		log:    sup.log.With("service", cfg.Name),
		events: make(chan instanceEvent, 4*cfg.InstanceCount+1),
		calls:  make(chan func()),
		loop:   make(chan struct{}),
		wanted: true,
	}
	sv.conf.Store(cfg)
	sv.snap.Store(initialSnapshot)
	return sv
}

// cfg is the service's current settings.
func (sv *service) cfg() *config.Service { return sv.conf.Load() }

// initialSnapshot is what a service shows before its run goroutine
// publishes: stopped, but wanted, so that WaitReady waits for it.
var initialSnapshot = &serviceSnapshot{state: ServiceStopped, wanted: true}

// run starts the service's instances and keeps them up until ctx is done or
// the supervisor is killed, then drains and stops them all in parallel. It
// returns once every instance goroutine has exited, with the errors of the
// instances that could not be stopped.
func (sv *service) run(ctx context.Context) error {
	defer close(sv.loop)
	defer sv.closeLog()
	sv.slots = make([]*slot, sv.cfg().InstanceCount)
	for i := range sv.slots {
		sv.slots[i] = sv.newSlot(i)
		sv.slots[i].port = sv.cfg().InstancePort(i, false)
	}
	sv.stopping = ctx.Err() != nil || sv.sup.killCtx.Err() != nil
	if !sv.stopping && sv.sup.priorStopped(sv.cfg().Name) {
		// Stopped by the operator before the upgrade: it stays so (its
		// instances, had any been left, are leftovers to stop), and its
		// start is a restart of each slot, as it would have been there.
		sv.wanted = false
		for _, sl := range sv.slots {
			sl.started = true
		}
		sv.set.SetStopped(true)
		sv.sup.addLeftovers(sv.sup.priorFor(sv.cfg().Name))
		sv.note(slog.LevelInfo, "service %s stays stopped, as the operator asked before the upgrade", sv.cfg().Name)
	}
	if !sv.stopping && sv.wanted {
		sv.restoreDrained()
		sv.sup.addLeftovers(sv.adoptPrior())
		for _, sl := range sv.slots {
			if sl.inst == nil {
				sl.port = sv.portBesidePrior(sl)
				sv.startSlot(sl)
			}
		}
	}
	sv.publish()

	done, killed := ctx.Done(), sv.sup.killCtx.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var errs []error
	for !sv.stopping || sv.live > 0 {
		var retryC <-chan time.Time
		if at, ok := sv.nextRetry(); ok {
			retry.Reset(time.Until(at))
			retryC = retry.C
		}
		select {
		case ev := <-sv.events:
			if ev.exited {
				sv.live--
			}
			if err := sv.handle(ev); err != nil {
				errs = append(errs, err)
			}
			sv.balance()
		case f := <-sv.calls:
			f()
		case <-retryC:
			now := time.Now()
			for _, sl := range sv.slots {
				if sl.inst == nil && sl.next == nil && !sl.retryAt.IsZero() && !now.Before(sl.retryAt) {
					sv.startSlot(sl)
				}
			}
		case <-done:
			sv.stopping = true
		case <-killed:
			sv.stopping = true
		}
		if sv.stopping && done != nil {
			done, killed = nil, nil
			sv.stopAll()
		}
		retry.Stop()
		sv.publish()
	}
	sv.publish()
	return errors.Join(errs...)
}

// call runs f on the run goroutine and waits for it; it reports false when
// the run goroutine has returned (f did not run).
func (sv *service) call(f func()) bool {
	done := make(chan struct{})
	select {
	// Published before the caller goes on: what it did shows in Status
	// at once (an undrain, then a status, sees it).
	case sv.calls <- func() { f(); sv.publish(); close(done) }:
		<-done
		return true
	case <-sv.loop:
		return false
	}
}

// launch starts in's goroutine, counted in live.
func (sv *service) launch(in *instance) {
	sv.live++
	go in.run()
}

// startSlot starts a new lifetime for sl on its port.
func (sv *service) startSlot(sl *slot) {
	in := sv.newInstance(sl, sl.port)
	if sl.started {
		sl.restarted(cmp.Or(sl.nextWhy, "crash"))
	}
	sl.nextWhy = ""
	sl.started = true
	sl.inst = in
	sl.readyAt, sl.retryAt = time.Time{}, time.Time{}
	sv.launch(in)
}

// stopAll tells every instance of the service to drain and stop, and
// cancels a rollout under way.
func (sv *service) stopAll() {
	if sv.rollout != nil {
		sv.rollout.cancel()
	}
	for _, sl := range slices.Concat(sv.slots, sv.removed) {
		sl.retire(sl.inst)
		for _, in := range sl.instances() { // a rollout's replacement, and those retiring
			in.stop()
		}
		sl.retryAt = time.Time{}
	}
}

// instances lists every live instance of the slot: current, replacement,
// and those being retired.
func (sl *slot) instances() []*instance {
	var out []*instance
	if sl.inst != nil {
		out = append(out, sl.inst)
	}
	if sl.next != nil {
		out = append(out, sl.next)
	}
	return append(out, sl.retiring...)
}

// retire moves in, the slot's instance or its replacement (nil: none),
// to those being drained and stopped, and tells it to stop; on the run
// goroutine. handle forgets it once it has exited.
func (sl *slot) retire(in *instance) {
	if in == nil {
		return
	}
	switch in {
	case sl.inst:
		sl.inst = nil
	case sl.next:
		sl.next = nil
	}
	sl.retiring = append(sl.retiring, in)
	in.stop()
}

// handle applies an instance's report. It returns an error only for an
// instance that could not be stopped.
func (sv *service) handle(ev instanceEvent) error {
	in := ev.inst
	sl := in.home
	if ev.health != healthNone {
		sv.handleHealth(ev)
		return nil
	}
	if !ev.exited {
		in.state, in.pid = ev.state, ev.pid
		if !ev.startedAt.IsZero() {
			in.startedAt = ev.startedAt
		}
		if ev.state == StateReady {
			in.joined, in.readyAt = true, time.Now()
			if sl.inst == in {
				sl.readyAt, sl.lastErr = in.readyAt, nil
			}
		}
		return nil
	}

	if in.joined {
		sl.tally.served += in.rot.served()
	}
	in.joined = false
	switch {
	case sl.next == in: // a rollout's replacement that failed: the rollout sees it
		sl.next = nil
		return nil
	case sl.inst != in: // retired
		sl.retiring = slices.DeleteFunc(sl.retiring, func(x *instance) bool { return x == in })
		if len(sl.retiring) == 0 {
			sv.removed = slices.DeleteFunc(sv.removed, func(x *slot) bool { return x == sl })
		}
		if ev.kind == exitStopped {
			return ev.err
		}
		return nil
	}
	sl.inst = nil
	if ev.kind == exitStopped {
		return ev.err
	}
	// Once stopping (or killed: Kill cancels killCtx before it kills),
	// or stopped by the operator, a failure is the stop's doing, not
	// something to restart.
	if sv.stopping || !sv.wanted || sv.sup.killCtx.Err() != nil {
		return nil
	}
	sl.lastErr = ev.err
	if sv.frozen {
		return nil // Thaw starts it, or the next smoothserve does
	}
	if !sl.readyAt.IsZero() && time.Since(sl.readyAt) >= backoffReset {
		sl.backoff = minBackoff
	}
	delay := sl.backoff
	sl.backoff = min(2*sl.backoff, maxBackoff)
	sl.retryAt = time.Now().Add(delay)
	sv.note(slog.LevelInfo, "%s#%d: starting again in %v", sv.cfg().Name, sl.index, delay)
	return nil
}

// nextRetry is the earliest time a slot in backoff is due to start.
func (sv *service) nextRetry() (time.Time, bool) {
	var at time.Time
	if sv.stopping || !sv.wanted || sv.frozen {
		return at, false
	}
	for _, sl := range sv.slots {
		if sl.inst == nil && sl.next == nil && !sl.retryAt.IsZero() && (at.IsZero() || sl.retryAt.Before(at)) {
			at = sl.retryAt
		}
	}
	return at, !at.IsZero()
}

// state is the service's state for Status.
func (sv *service) state() string {
	switch {
	case sv.live > 0 && (sv.stopping || !sv.wanted):
		return ServiceStopping
	case sv.stopping || !sv.wanted:
		return ServiceStopped
	}
	return ServiceRunning
}

// publish replaces the snapshot Status reads, and wakes whoever waits for a
// change (Supervisor.waitFor, the state file's writer).
func (sv *service) publish() {
	snap := &serviceSnapshot{state: sv.state(), wanted: sv.wanted && !sv.stopping, slots: make([]slotSnapshot, 0, len(sv.slots)), drained: sv.drainedSlots(),
		opStopped: !sv.wanted, tallies: sv.talliesNow()}
	if sv.last != nil {
		snap.lastRollout = cloneRollout(sv.last)
	}
	for _, sl := range slices.Concat(sv.slots, sv.removed) {
		is := InstanceStatus{Slot: sl.index, Port: sl.port, State: StateBackoff}
		if sl.lastErr != nil {
			is.Error = sl.lastErr.Error()
		}
		ins := sl.instances()
		if len(ins) == 0 && snap.state == ServiceRunning {
			snap.slots = append(snap.slots, slotSnapshot{InstanceStatus: is, err: sl.lastErr})
		}
		for _, in := range ins {
			e := is
			e.Port, e.Pid, e.State, e.StartedAt = in.port, in.pid, sl.shownState(in), in.startedAt
			var ident handoff.Identity
			if !in.readyAt.IsZero() || in.adopt != nil {
				ident = in.ident // written before its ready event, or before its start if adopted
			}
			if in != sl.inst {
				e.Error = ""
			}
			var rot *rotation
			if in.joined {
				rot = in.rot
			}
			snap.slots = append(snap.slots, slotSnapshot{InstanceStatus: e, rot: rot, ident: ident, fingerprint: in.fingerprint})
		}
	}
	sv.snap.Store(snap)
	sv.sup.changed()
}

// startFailed is why a slot of the service failed to start, now waiting
// to try again (another process listens on its port, its instance exited
// before it was ready, or was not ready in start_timeout): waiting alone
// will not make it ready. nil if none did.
func (sv *service) startFailed() error {
	for _, sl := range sv.snap.Load().slots {
		// err is set only on a slot waiting to try again: the error of
		// one starting anew may be out of date.
		if sl.err != nil {
			return fmt.Errorf("%s#%d: %w", sv.cfg().Name, sl.Slot, sl.err)
		}
	}
	return nil
}

// readyCount is how many of the service's slots have their instance up:
// ready, and in rotation unless it fails its health check after start
// (unhealthy) or the operator drained it, which waiting would not mend.
func (sv *service) readyCount() int {
	n := 0
	seen := map[int]bool{}
	for _, sl := range sv.snap.Load().slots {
		if (sl.State == StateReady || sl.State == StateUnhealthy || sl.State == StateDrained) && !seen[sl.Slot] {
			seen[sl.Slot] = true
			n++
		}
	}
	return n
}

// openLog returns the service's log file, LogDir/<name>.log, opened for
// appending on first use. Instances get it as their stdout and stderr.
func (sv *service) openLog() (*os.File, error) {
	sv.logMu.Lock()
	defer sv.logMu.Unlock()
	if sv.logFile != nil {
		return sv.logFile, nil
	}
	dir := sv.sup.cfg.LogDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log folder: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, sv.cfg().Name+".log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log file: %w", err)
	}
	sv.logFile = f
	return f, nil
}

func (sv *service) closeLog() {
	sv.logMu.Lock()
	defer sv.logMu.Unlock()
	if sv.logFile != nil {
		sv.logFile.Close()
		sv.logFile = nil
	}
}

// note logs what happened to an instance, both to smoothserve's log and as a
// line in the service's log file, where an operator reading the instance's
// output sees it in place.
func (sv *service) note(level slog.Level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	sv.log.Log(context.Background(), level, msg)
	f, err := sv.openLog()
	if err != nil {
		return // the start that needs the file reports it
	}
	// One write per line: O_APPEND keeps it whole among the instances' own.
	fmt.Fprintf(f, "%s smoothserve: %s\n", time.Now().Format("2006-01-02T15:04:05.000Z07:00"), msg)
}
