package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"smoothserve/config"
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
// Ownership: the slots belong to the run goroutine, the only one to start
// instances, restart them, or tell them to stop; instances report to it over
// events. It publishes what Status shows through snap, which only it writes.
// logMu guards logFile, shared by the instances' goroutines to append lines.
type service struct {
	sup *Supervisor
	cfg *config.Service
	set *upstream.Set
	log *slog.Logger

	events chan instanceEvent
	snap   atomic.Pointer[serviceSnapshot]

	logMu   sync.Mutex
	logFile *os.File
}

// slot is one of the InstanceCount places of a service and the history of
// the processes that served it.
type slot struct {
	index int
	port  int

	inst      *instance // current lifetime; nil in backoff
	state     State
	pid       int
	startedAt time.Time
	readyAt   time.Time
	backend   *upstream.Backend

	starts       int           // processes started for the slot
	backoff      time.Duration // wait before the next start after a failure
	retryAt      time.Time     // in backoff: when to start again
	servedBefore uint64        // served by the slot's earlier processes
	lastErr      error         // why the last lifetime failed; cleared when ready
}

func newService(sup *Supervisor, cfg *config.Service, set *upstream.Set) *service {
	sv := &service{
		sup:    sup,
		cfg:    cfg,
		set:    set,
		log:    sup.log.With("service", cfg.Name),
		events: make(chan instanceEvent, 2*cfg.InstanceCount+1),
	}
	sv.snap.Store(&serviceSnapshot{state: ServiceStopped})
	return sv
}

// run starts the service's instances and keeps them up until ctx is done or
// the supervisor is killed, then drains and stops them all in parallel. It
// returns once every instance goroutine has exited, with the errors of the
// instances that could not be stopped.
func (sv *service) run(ctx context.Context) error {
	defer sv.closeLog()
	slots := make([]*slot, sv.cfg.InstanceCount)
	live := 0 // instance goroutines that have not reported their exit
	for i := range slots {
		slots[i] = &slot{index: i, port: sv.cfg.InstancePort(i, false), backoff: minBackoff}
	}
	stopping := ctx.Err() != nil || sv.sup.killCtx.Err() != nil
	if !stopping {
		for _, sl := range slots {
			sv.startSlot(sl)
			live++
		}
	}
	sv.publish(ServiceRunning, slots)

	done, killed := ctx.Done(), sv.sup.killCtx.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var errs []error
	for !stopping || live > 0 {
		var retryC <-chan time.Time
		if at, ok := nextRetry(slots); ok && !stopping {
			retry.Reset(time.Until(at))
			retryC = retry.C
		}
		select {
		case ev := <-sv.events:
			if ev.exited {
				live--
			}
			if err := sv.handle(slots, ev, stopping); err != nil {
				errs = append(errs, err)
			}
		case <-retryC:
			now := time.Now()
			for _, sl := range slots {
				if sl.inst == nil && !sl.retryAt.IsZero() && !now.Before(sl.retryAt) {
					sv.startSlot(sl)
					live++
				}
			}
		case <-done:
			stopping = true
		case <-killed:
			stopping = true
		}
		if stopping && done != nil {
			done, killed = nil, nil
			for _, sl := range slots {
				if sl.inst != nil {
					sl.inst.stop()
				}
			}
		}
		retry.Stop()
		if stopping {
			sv.publish(ServiceStopping, slots)
		} else {
			sv.publish(ServiceRunning, slots)
		}
	}
	sv.publish(ServiceStopped, nil)
	return errors.Join(errs...)
}

// startSlot starts a new lifetime for sl.
func (sv *service) startSlot(sl *slot) {
	in := sv.newInstance(sl.index, sl.port)
	sl.starts++
	sl.inst = in
	sl.state = StateStarting
	sl.pid, sl.backend = 0, nil
	sl.startedAt, sl.readyAt, sl.retryAt = time.Time{}, time.Time{}, time.Time{}
	go in.run()
}

// handle applies an instance's report to its slot. It returns an error only
// for an instance that could not be stopped.
func (sv *service) handle(slots []*slot, ev instanceEvent, stopping bool) error {
	sl := slots[ev.inst.slot]
	if sl.inst != ev.inst {
		return nil // a lifetime the slot no longer follows (none yet)
	}
	if !ev.exited {
		sl.state, sl.pid = ev.state, ev.pid
		if !ev.startedAt.IsZero() {
			sl.startedAt = ev.startedAt
		}
		if ev.state == StateReady {
			sl.backend, sl.readyAt, sl.lastErr = ev.backend, time.Now(), nil
		}
		return nil
	}

	if sl.backend != nil {
		sl.servedBefore += sl.backend.Served()
	}
	sl.inst, sl.pid, sl.backend, sl.startedAt = nil, 0, nil, time.Time{}
	sl.state = StateBackoff
	if ev.kind == exitStopped {
		return ev.err
	}
	// Once stopping (or killed: Kill cancels killCtx before it kills),
	// a failure is the stop's doing, not something to restart.
	if stopping || sv.sup.killCtx.Err() != nil {
		return nil
	}
	sl.lastErr = ev.err
	if !sl.readyAt.IsZero() && time.Since(sl.readyAt) >= backoffReset {
		sl.backoff = minBackoff
	}
	delay := sl.backoff
	sl.backoff = min(2*sl.backoff, maxBackoff)
	sl.retryAt = time.Now().Add(delay)
	sv.note(slog.LevelInfo, "%s#%d: starting again in %v", sv.cfg.Name, sl.index, delay)
	return nil
}

// nextRetry is the earliest time a slot in backoff is due to start.
func nextRetry(slots []*slot) (time.Time, bool) {
	var at time.Time
	for _, sl := range slots {
		if sl.inst == nil && !sl.retryAt.IsZero() && (at.IsZero() || sl.retryAt.Before(at)) {
			at = sl.retryAt
		}
	}
	return at, !at.IsZero()
}

// publish replaces the snapshot Status reads, and wakes WaitReady.
func (sv *service) publish(state string, slots []*slot) {
	snap := &serviceSnapshot{state: state, slots: make([]slotSnapshot, 0, len(slots))}
	for _, sl := range slots {
		is := InstanceStatus{
			Slot:      sl.index,
			Port:      sl.port,
			Pid:       sl.pid,
			State:     sl.state,
			Restarts:  max(sl.starts-1, 0),
			StartedAt: sl.startedAt,
		}
		if sl.lastErr != nil {
			is.Error = sl.lastErr.Error()
		}
		snap.slots = append(snap.slots, slotSnapshot{InstanceStatus: is, backend: sl.backend, servedBefore: sl.servedBefore})
	}
	sv.snap.Store(snap)
	sv.sup.changed()
}

// readyCount is how many of the service's instances are in rotation.
func (sv *service) readyCount() int {
	n := 0
	for _, sl := range sv.snap.Load().slots {
		if sl.State == StateReady {
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
	f, err := os.OpenFile(filepath.Join(dir, sv.cfg.Name+".log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
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
