package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultQuiet is the debounce used when Spec.Quiet is zero; it is the
// documented default of delay_update_time.
const DefaultQuiet = 2 * time.Second

// Spec is what to watch for one service.
type Spec struct {
	// Name identifies the service in Changes and logs. Required and unique
	// within one Set.
	Name string

	// Files are absolute paths of files or folders (folders recursively).
	// A path that does not exist yet is picked up when it appears. Empty
	// means nothing is watched for this service.
	Files []string

	// Ignore are glob patterns (path.Match syntax) for changes that trigger
	// nothing:
	//   - without "/" ("*.swp"): matched against the base name of a path;
	//   - ending in "/" (".git/"): matches any path that has such a folder as
	//     one of its components (a pattern with an inner "/", "build/cache/",
	//     is anchored at the watched folder);
	//   - otherwise ("logs/*.log"): matched against the path relative to the
	//     watched folder.
	// Patterns apply below watched folders only: a file named in Files always
	// counts. Nil ignores nothing.
	Ignore []string

	// Quiet is the debounce: a Change is sent once nothing watched has
	// changed for this long. Zero means DefaultQuiet.
	Quiet time.Duration
}

// Change is one debounced burst of changes of one service.
type Change struct {
	Name string
	// Paths are the changed paths, deduplicated and sorted; at most maxPaths
	// of them, so a huge upload does not make a huge Change.
	Paths []string
	// First and Last are when the first and the last change of the burst
	// were seen.
	First, Last time.Time
}

// Watcher watches the files of several services and sends debounced Changes.
//
// Run's goroutine owns the fsnotify watcher's events, the watched folders,
// the bursts and the timer (all in a runState that only Run sees). mu guards
// only the mailbox through which Set hands specs to Run, and the lifecycle
// flags.
type Watcher struct {
	log     *slog.Logger
	fsw     *fsnotify.Watcher
	changes chan Change
	wake    chan struct{} // capacity 1: the mailbox has something for Run
	stopped chan struct{} // closed when Run returns

	mu      sync.Mutex
	next    []*service // compiled specs of the last Set, until Run takes them
	hasNext bool
	ack     *ack // completed by the Run apply that takes the current mailbox
	started bool // Run has been called
	running bool // Run is in its loop: Set waits for it to apply
}

// ack tells Set that Run has applied its specs, and how that went.
type ack struct {
	done chan struct{}
	err  error // written before done is closed
}

func newAck() *ack { return &ack{done: make(chan struct{})} }

// New returns a Watcher that watches nothing until Set. It allocates the
// kernel watcher now, so a missing inotify instance is reported at start;
// Run releases it.
func New(log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: creating file watcher: %w", err)
	}
	return &Watcher{
		log:     log,
		fsw:     fsw,
		changes: make(chan Change),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		ack:     newAck(),
	}, nil
}

// Set replaces what is watched. It is safe from any goroutine. Invalid specs
// are rejected as a whole and change nothing. While Run is running, Set
// returns once the new watches are in place, with any errors adding them (a
// folder that cannot be read, too many watches); such an error does not undo
// the rest. Before Run starts, Set only records the specs and Run applies
// them first. A service that keeps its name keeps its burst in progress.
func (w *Watcher) Set(specs []Spec) error {
	svcs, err := compile(specs)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.next, w.hasNext = svcs, true
	a, running := w.ack, w.running
	w.mu.Unlock()

	select {
	case w.wake <- struct{}{}:
	default: // Run has a wake-up pending already; it will take the newest specs
	}
	if !running {
		return nil
	}
	select {
	case <-a.done:
		return a.err
	case <-w.stopped:
		return nil
	}
}

// Changes returns the debounced changes, one per burst per service. It is
// closed when Run returns. If the reader falls behind, bursts of one service
// are merged into one Change rather than queued.
func (w *Watcher) Changes() <-chan Change { return w.changes }

// Run watches until ctx is done, then closes the kernel watcher and Changes
// and returns nil. It may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("watch: Run called twice")
	}
	w.started, w.running = true, true
	w.mu.Unlock()

	st := newRunState(w.log, w.fsw)
	defer func() {
		st.timer.Stop()
		if err := w.fsw.Close(); err != nil {
			w.log.Warn("closing file watcher", "err", err)
		}
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
		close(w.stopped)
		close(w.changes)
	}()

	w.apply(st)
	for {
		var out chan<- Change
		var head Change
		if len(st.outbox) > 0 {
			out, head = w.changes, st.outbox[0]
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
			w.apply(st)
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("watch: file watcher event stream closed")
			}
			st.handle(ev, time.Now())
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("watch: file watcher error stream closed")
			}
			st.fsError(err, time.Now())
		case now := <-st.timer.C:
			st.fire(now)
		case out <- head:
			st.outbox = st.outbox[1:]
		}
	}
}

// apply takes the mailbox, if anything is in it, and makes it what is watched.
func (w *Watcher) apply(st *runState) {
	w.mu.Lock()
	if !w.hasNext {
		w.mu.Unlock()
		return
	}
	svcs, a := w.next, w.ack
	w.next, w.hasNext, w.ack = nil, false, newAck()
	w.mu.Unlock()

	a.err = st.replace(svcs, time.Now())
	if a.err != nil {
		w.log.Warn("watching files", "err", a.err)
	}
	close(a.done)
}

// isRunning reports whether Run is in its loop (tests wait for it before Set,
// so that Set returns with the watches in place).
func (w *Watcher) isRunning() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}
