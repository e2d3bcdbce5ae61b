package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"smoothserve/control/api"
	"smoothserve/handoff"
	"smoothserve/proxy"
)

// Draining the host (smoothtool drain, undrain): leaving an outer load
// balancer's rotation without losing a request. GET /health on AdminAddr
// (and the agent port) says so at once; for DrainDelay every request is
// served as before, since the balancer sends them until its checks have
// seen it; then the proxy closes each connection once answered, so that
// clients move to the other hosts; once no request is in flight (or the
// drain's timeout passed) the host is drained. The drain is kept in
// StateDir/drainFileName, so that it outlives an upgrade and a restart of
// the daemon: a drained host stays drained until undrained.

// drainFileName is the host's drain in StateDir; absent while serving.
const drainFileName = "smoothserve.drain"

// drainPoll is how often a drain looks whether its delay or deadline has
// passed and whether requests are still in flight.
const drainPoll = 20 * time.Millisecond

// hostDrain is the host's drain.
//
// Ownership: mu guards every field below it. Drain and Undrain change
// them; one watch goroutine per drain moves it on (closing, drained) and
// ends when it is drained, undrained or ended (stop closed).
type hostDrain struct {
	px    *proxy.Server
	file  string
	delay time.Duration
	log   *slog.Logger

	mu       sync.Mutex
	st       api.HostStatus
	deadline time.Time     // declared drained then, in flight or not; zero: no deadline
	served0  uint64        // the proxy's requests answered when the drain began (in this process)
	stop     chan struct{} // closed to end the drain's watch; nil when there is none
	done     chan struct{} // closed when the drain is over: drained, or undrained
	stopping bool          // smoothserve is stopping: not serving whatever the state
}

func newHostDrain(px *proxy.Server, stateDir string, delay time.Duration, log *slog.Logger) *hostDrain {
	return &hostDrain{px: px, file: filepath.Join(stateDir, drainFileName), delay: delay, log: log,
		st: api.HostStatus{State: api.HostServing}}
}

// drainFile is what the drain file holds.
type drainFile struct {
	State     string    `json:"state"`
	Since     time.Time `json:"since"`
	Deadline  time.Time `json:"deadline,omitzero"`   // the drain's --timeout, as a time
	DrainedAt time.Time `json:"drained_at,omitzero"` // drained: when
	TimedOut  bool      `json:"timed_out,omitempty"`
}

// restore takes up the drain the previous smoothserve (an upgrade, or a
// restart) left in the drain file.
func (h *hostDrain) restore() {
	b, err := os.ReadFile(h.file)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var f drainFile
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err == nil && f.State != api.HostDraining && f.State != api.HostDrained {
		err = fmt.Errorf("unknown state %q", f.State)
	}
	if err != nil {
		// Draining is the safe reading: /health 503 takes nothing away
		// that undrain cannot give back, serving might send traffic to a
		// host taken out on purpose.
		h.log.Error("the drain file cannot be read; the host stays draining until smoothtool undrain", "file", h.file, "err", err)
		f = drainFile{State: api.HostDraining, Since: time.Now()}
	}
	h.log.Info("the host stays "+f.State+", as before: /health answers 503 until smoothtool undrain", "since", f.Since)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.begin(f.Since, f.Deadline)
	if f.State == api.HostDrained {
		// Drained already: nothing to watch; connections close after
		// their answer at once.
		h.st.Closing, h.st.State, h.st.DrainedAt, h.st.TimedOut = true, api.HostDrained, f.DrainedAt, f.TimedOut
		h.px.SetDraining(true)
		close(h.done)
		return
	}
	h.startWatch()
}

// begin sets up a drain that began at since; the caller holds mu.
func (h *hostDrain) begin(since, deadline time.Time) {
	h.st = api.HostStatus{State: api.HostDraining, DrainSince: since}
	h.deadline = deadline
	h.served0 = h.px.Answered()
	h.done = make(chan struct{})
}

// startWatch starts the watch of the drain begun; the caller holds mu.
func (h *hostDrain) startWatch() {
	h.stop = make(chan struct{})
	go h.watch(h.stop, h.done)
}

// ErrUndrained ends a drain --wait whose drain an undrain ended.
var ErrUndrained = errors.New("the host was undrained while waiting for it to drain")

// Drain begins draining the host, unless it is draining already (a
// timeout given then sets the deadline anew). With wait, it returns once
// the host is drained, the drain was undrained, or ctx is done. timeout,
// if above 0, declares it drained after that long with requests still in
// flight.
func (h *hostDrain) Drain(ctx context.Context, wait bool, timeout time.Duration) (api.HostStatus, error) {
	h.mu.Lock()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if h.st.State == api.HostServing {
		h.begin(time.Now(), deadline)
		h.startWatch()
		h.save()
		h.log.Info("draining: /health answers 503; requests are served as before for DrainDelay, then connections close after their response",
			"delay", h.delay, "timeout", timeout)
	} else if timeout > 0 && h.st.State == api.HostDraining {
		h.deadline = deadline
		h.save()
	}
	done := h.done
	h.mu.Unlock()
	if wait {
		select {
		case <-done:
		case <-ctx.Done():
			return h.Status(), fmt.Errorf("waiting for the host to drain: %w", ctx.Err())
		}
		if st := h.Status(); st.State == api.HostServing {
			return st, ErrUndrained
		}
	}
	return h.Status(), nil
}

// Undrain ends a drain: /health answers 200 again, connections are kept
// alive again.
func (h *hostDrain) Undrain() api.HostStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st.State == api.HostServing {
		return h.statusLocked()
	}
	h.endWatch()
	if h.st.State != api.HostDrained {
		close(h.done) // a drain --wait ends, and says so
	}
	h.px.SetDraining(false)
	h.st = api.HostStatus{State: api.HostServing}
	if err := os.Remove(h.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		h.log.Error("the drain file cannot be removed: the next smoothserve starts draining", "file", h.file, "err", err)
	}
	h.log.Info("serving: /health answers 200 again")
	return h.statusLocked()
}

// watch moves a drain on, every drainPoll: it closes connections once
// DrainDelay has passed, and makes the host drained once nothing is in
// flight then, or once the deadline passed (DrainDelay or not). It ends
// then, or when stop is closed.
func (h *hostDrain) watch(stop, done chan struct{}) {
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-stop:
			return
		}
		if h.step(stop, done) {
			return
		}
	}
}

// step is one look of watch; it reports whether the drain is over.
func (h *hostDrain) step(stop, done chan struct{}) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-stop:
		return true
	default:
	}
	now := time.Now()
	late := !h.deadline.IsZero() && !now.Before(h.deadline)
	if !h.st.Closing && (late || !now.Before(h.st.DrainSince.Add(h.delay))) {
		h.st.Closing = true
		h.px.SetDraining(true)
	}
	if !h.st.Closing {
		return false
	}
	inFlight := h.px.InFlight()
	if inFlight > 0 && !late {
		return false
	}
	h.st.State, h.st.DrainedAt, h.st.TimedOut = api.HostDrained, now, inFlight > 0
	h.stop = nil
	close(done)
	h.save()
	st := h.statusLocked()
	h.log.Info("drained", "in_flight", inFlight, "timed_out", st.TimedOut, "connections_closed", st.ClosedConnections,
		"served_since_drain", st.Served, "took", st.DrainedAt.Sub(st.DrainSince).Round(time.Millisecond))
	return true
}

// save writes the drain file, logging a failure; the caller holds mu.
func (h *hostDrain) save() {
	b, err := json.Marshal(drainFile{State: h.st.State, Since: h.st.DrainSince, Deadline: h.deadline,
		DrainedAt: h.st.DrainedAt, TimedOut: h.st.TimedOut})
	if err == nil {
		err = handoff.WriteFile(h.file, append(b, '\n'))
	}
	if err != nil {
		h.log.Error("the drain is not kept for the next smoothserve", "err", err)
	}
}

// endWatch stops the drain's watch, if one runs; the caller holds mu.
func (h *hostDrain) endWatch() {
	if h.stop != nil {
		close(h.stop)
		h.stop = nil
	}
}

// setStopping makes the host answer as not serving from now on:
// smoothserve is stopping.
func (h *hostDrain) setStopping() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopping = true
}

// end stops the drain's watch (smoothserve stops or hands over); the
// drain file stays for the next smoothserve. Undrain still works after.
func (h *hostDrain) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endWatch()
}

// Status is the host's drain now.
func (h *hostDrain) Status() api.HostStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.statusLocked()
}

func (h *hostDrain) statusLocked() api.HostStatus {
	st := h.st
	st.InFlight = h.px.InFlight()
	if st.State != api.HostServing {
		if st.Closing { // the proxy counts from when it began closing
			st.ClosedConnections = h.px.DrainClosed()
		}
		st.Served = h.px.Answered() - h.served0
	}
	return st
}

// serving reports whether the host takes new traffic: what /health and
// the agent answer.
func (h *hostDrain) serving() (ok bool, state string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopping {
		return false, "stopping"
	}
	return h.st.State == api.HostServing, h.st.State
}
