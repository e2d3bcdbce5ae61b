package watch

import (
	"errors"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxPaths caps Change.Paths, so copying a large tree does not make a Change
// (and a log line) as large as the tree.
const maxPaths = 50

// burst is a service's changes since its last Change.
type burst struct {
	pending     bool
	first, last time.Time
	paths       map[string]struct{}
	more        int // changes of paths beyond maxPaths, for the log
}

// mark records a change of p for s. It is on the per-event path: it resets
// the timer only when this deadline comes before the armed one, which a
// burst in progress never does.
func (st *runState) mark(s *service, p string, now time.Time) {
	b := &s.burst
	if !b.pending {
		*b = burst{pending: true, first: now, paths: make(map[string]struct{})}
	}
	b.last = now
	if _, ok := b.paths[p]; !ok {
		if len(b.paths) < maxPaths {
			b.paths[p] = struct{}{}
		} else {
			b.more++
		}
	}
	st.arm(now.Add(s.quiet), now)
}

// arm makes the timer fire no later than due.
func (st *runState) arm(due, now time.Time) {
	if st.armed && !due.Before(st.deadline) {
		return
	}
	st.timer.Reset(due.Sub(now))
	st.armed, st.deadline = true, due
}

// fire sends the bursts that have been quiet long enough and re-arms the
// timer for the earliest one still going. A burst extended since the timer
// was armed is seen here, late, instead of resetting the timer per event.
func (st *runState) fire(now time.Time) {
	st.armed = false
	var next time.Time
	for _, s := range st.services {
		b := &s.burst
		if !b.pending {
			continue
		}
		if due := b.last.Add(s.quiet); now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		st.emit(s)
	}
	if !next.IsZero() {
		st.arm(next, now)
	}
}

// emit ends s's burst and queues it as a Change, merged into one still
// waiting for the reader: the reader wants to know that it must roll out,
// not how many times.
func (st *runState) emit(s *service) {
	b := s.burst
	s.burst = burst{}
	c := Change{Name: s.name, Paths: make([]string, 0, len(b.paths)), First: b.first, Last: b.last}
	for p := range b.paths {
		c.Paths = append(c.Paths, p)
	}
	slices.Sort(c.Paths)
	st.log.Debug("files changed", "service", s.name, "paths", c.Paths, "more", b.more,
		"burst", b.last.Sub(b.first).Round(time.Millisecond))

	for i := range st.outbox {
		if q := &st.outbox[i]; q.Name == c.Name {
			q.Paths = slices.Compact(slices.Sorted(slices.Values(append(q.Paths, c.Paths...))))
			if len(q.Paths) > maxPaths {
				q.Paths = q.Paths[:maxPaths]
			}
			q.Last = c.Last
			return
		}
	}
	st.outbox = append(st.outbox, c)
}

// fsError handles an error from the kernel watcher. After an overflow events
// were lost, so nobody knows what changed: every service counts as changed,
// and every tree is walked again to pick up folders created unseen.
func (st *runState) fsError(err error, now time.Time) {
	if !errors.Is(err, fsnotify.ErrEventOverflow) {
		st.log.Warn("file watcher", "err", err)
		return
	}
	st.log.Warn("file events were lost (queue overflow); treating every watched path as changed",
		"hint", "raise the sysctl fs.inotify.max_queued_events")
	for _, s := range st.services {
		for _, r := range s.roots {
			st.mark(s, r.path, now)
		}
	}
	if err := st.sync(now); err != nil {
		st.log.Warn("watching files", "err", err)
	}
}
