package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smoothserve/config"
	"smoothserve/handoff"
	"smoothserve/internal/nofile"
	"smoothserve/upstream"
)

// termGrace is how long an instance has to exit after SIGTERM before its
// process group gets SIGKILL, when its service says nothing (kill_timeout:
// config.Service.KillTimeout), and for one no service has any more.
const termGrace = 10 * time.Second

// Supervisor runs the instances of every enabled service of a configuration.
//
// Ownership: svcMu guards services (replaced, never modified in place:
// list returns it), runCtx and closed, and each service's cancel; what
// else New sets is read-only after; each service's slots belong to that
// service's run goroutine; procs guards itself; changedMu guards
// changedCh.
type Supervisor struct {
	cfg     *config.Config
	log     *slog.Logger
	running atomic.Bool // Run was called
	// pidfdWarned: a start has logged that the kernel gave no pidfd (it is
	// said once, not at every start).
	pidfdWarned atomic.Bool
	// noFDsSaid: when a health check last logged that it was not made
	// for want of a descriptor (one such line in nofile.WarnEvery,
	// whatever the instances).
	noFDsSaid nofile.Said

	svcMu    sync.Mutex
	services []*service      // in configuration order, disabled ones too; added ones last
	runCtx   context.Context // Run's; nil before Run
	closed   bool            // Run is ending: no service is added or started
	wg       sync.WaitGroup  // the services' run goroutines
	errsMu   sync.Mutex
	runErrs  []error // of the services' run goroutines

	// killCtx is cancelled by Kill: every wait of every instance ends, and
	// nothing is started again. It carries SetMakeRoom's function to the
	// probes (withRoom).
	killCtx context.Context
	kill    context.CancelFunc
	procs   procTable

	termGrace time.Duration // termGrace; tests shorten it

	changedMu sync.Mutex
	changedCh chan struct{} // closed and replaced whenever a service publishes

	// The handoff (handoff.go): set by Handoff before Run, read-only after.
	// stateOut writes the state file (nil: none is kept); its writes are
	// made holding stateMu.
	stateOut   *handoff.Writer
	prior      *handoff.State
	handedOver bool        // prior was written for this process by the one handing over to it now
	detached   atomic.Bool // Detach: let instances go instead of stopping them

	stateMu     sync.Mutex // serialises writes of the state file; guards stateFrozen and the keys
	stateFrozen bool
	stateKey    string // what the state file last written says that matters (writeState)
	stateExact  string // all it says but when and by whom it was written

	leftMu    sync.Mutex
	leftovers []handoff.Instance // prior instances no slot adopted, for StopLeftovers
	// drainTaken names the services whose drained slots (prior.Drained)
	// were taken up already; guarded by leftMu.
	drainTaken map[string]bool
}

// New returns a supervisor for cfg. sets holds the rotation of each service
// by name, as the proxy routes to them; a nil logger discards.
func New(cfg *config.Config, sets map[string]*upstream.Set, logger *slog.Logger) *Supervisor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		cfg:       cfg,
		log:       logger,
		termGrace: termGrace,
		changedCh: make(chan struct{}),
	}
	s.killCtx, s.kill = context.WithCancel(context.Background())
	for _, svc := range cfg.Services {
		s.services = append(s.services, newService(s, svc, sets[svc.Name]))
	}
	return s
}

// SetMakeRoom gives room to what the supervisor does that needs a
// descriptor (a start, the probes of the instances: readiness, health
// checks, the port check): when this process has none left (EMFILE or
// ENFILE), room frees some (the proxy closes idle connections:
// proxy.Server.MakeRoom) and it is tried again. Call it before Run.
func (s *Supervisor) SetMakeRoom(room nofile.Room) {
	s.killCtx = withRoom(s.killCtx, room)
}

// Run starts InstanceCount instances of every enabled service and keeps them
// up until ctx is done; then it drains and stops them all, in parallel, and
// returns once every process is reaped. It returns an error only when an
// instance could not be stopped (or it cannot start at all).
func (s *Supervisor) Run(ctx context.Context) error {
	if s.running.Swap(true) {
		return errors.New("supervisor: Run called twice")
	}
	var enabled []*service
	for _, sv := range s.list() {
		if !sv.cfg().Enabled {
			continue
		}
		if sv.set == nil {
			return fmt.Errorf("supervisor: no upstream set for service %s", sv.cfg().Name)
		}
		enabled = append(enabled, sv)
	}
	if s.prior != nil {
		for _, in := range s.prior.Instances {
			if !slices.ContainsFunc(enabled, func(sv *service) bool { return sv.cfg().Name == in.Service }) {
				s.addLeftovers([]handoff.Instance{in})
			}
		}
	}
	stateCtx, stopState := context.WithCancel(context.Background())
	stateDone := make(chan struct{})
	go func() { defer close(stateDone); s.keepState(stateCtx) }()

	s.svcMu.Lock()
	s.runCtx = ctx
	for _, sv := range enabled {
		s.startService(sv)
	}
	s.svcMu.Unlock()
	select {
	case <-ctx.Done():
	case <-s.killCtx.Done():
	}
	s.svcMu.Lock()
	s.closed = true // from now on the service goroutines only end
	s.svcMu.Unlock()
	s.wg.Wait()
	s.errsMu.Lock()
	errs := s.runErrs
	s.errsMu.Unlock()
	stopState()
	<-stateDone
	s.stateMu.Lock()
	if !s.detached.Load() && !s.stateFrozen {
		// Everything stopped: the state file says so.
		if err := s.writeState(false); err != nil {
			errs = append(errs, err)
		}
	}
	if s.stateOut != nil {
		if err := s.stateOut.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.stateMu.Unlock()
	return errors.Join(errs...)
}

// Kill SIGKILLs every instance's process group at once, and makes Run return
// as soon as they are reaped, without draining. It is safe to call at any
// time, from any goroutine, any number of times.
func (s *Supervisor) Kill() {
	// Cancel first: an instance that loses its process from now on sees it
	// was killed, not lost, and is not started again.
	s.kill()
	s.procs.killAll()
}

func (s *Supervisor) addLeftovers(in []handoff.Instance) {
	s.leftMu.Lock()
	defer s.leftMu.Unlock()
	s.leftovers = append(s.leftovers, in...)
}

// WaitReady returns nil once every enabled service has InstanceCount
// instances in rotation, or an error saying which are missing when ctx is
// done first.
func (s *Supervisor) WaitReady(ctx context.Context) error {
	var missing string
	return s.waitFor(ctx, func() bool { missing = s.notReady(); return missing == "" },
		func() string { return fmt.Sprintf("waiting for instances to be ready (%s)", missing) })
}

// notReady lists the services short of ready instances, "" when none is.
func (s *Supervisor) notReady() string {
	var missing []string
	for _, sv := range s.list() {
		if !sv.cfg().Enabled || !sv.snap.Load().wanted {
			continue
		}
		if n := sv.readyCount(); n < sv.cfg().InstanceCount {
			missing = append(missing, fmt.Sprintf("%s: %d of %d ready", sv.cfg().Name, n, sv.cfg().InstanceCount))
		}
	}
	return strings.Join(missing, ", ")
}

// waitFor waits until cond holds, checked whenever a service publishes,
// or returns an error starting with what() when ctx is done first.
func (s *Supervisor) waitFor(ctx context.Context, cond func() bool, what func() string) error {
	for {
		changed := s.changedChan()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what(), ctx.Err())
		}
	}
}

func (s *Supervisor) changedChan() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changedCh
}

// changed wakes whoever waits for a change of status.
func (s *Supervisor) changed() {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	close(s.changedCh)
	s.changedCh = make(chan struct{})
}

// list is the services, in order; the slice is never modified (AddService
// and RemoveService replace it).
func (s *Supervisor) list() []*service {
	s.svcMu.Lock()
	defer s.svcMu.Unlock()
	return s.services
}

// ownerOf names the instance of a service other than not that has port
// (as its last status says), or "".
func (s *Supervisor) ownerOf(port int, not *service) string {
	for _, sv := range s.list() {
		if sv == not {
			continue
		}
		for _, sl := range sv.snap.Load().slots {
			if sl.Port == port && sl.Pid > 0 {
				return fmt.Sprintf("%s#%d (pid %d)", sv.cfg().Name, sl.Slot, sl.Pid)
			}
		}
	}
	return ""
}

// startService runs sv's goroutine until Run ends or RemoveService; the
// caller holds svcMu, and Run has begun and is not ending.
func (s *Supervisor) startService(sv *service) {
	ctx, cancel := context.WithCancel(s.runCtx)
	sv.cancel = cancel
	s.wg.Go(func() {
		defer cancel()
		if err := sv.run(ctx); err != nil {
			s.errsMu.Lock()
			s.runErrs = append(s.runErrs, err)
			s.errsMu.Unlock()
		}
	})
}
