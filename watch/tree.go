package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// runState is everything Run's goroutine owns. Nothing else has a pointer
// to it, so none of it needs a lock.
type runState struct {
	log      *slog.Logger
	fsw      *fsnotify.Watcher
	services []*service
	watched  map[string]os.FileInfo // folders we added a kernel watch for, as they were then

	timer    *time.Timer // fires at deadline when armed
	armed    bool
	deadline time.Time
	outbox   []Change // debounced, not yet received; at most one per service
}

func newRunState(log *slog.Logger, fsw *fsnotify.Watcher) *runState {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &runState{log: log, fsw: fsw, watched: make(map[string]os.FileInfo), timer: t}
}

// replace makes svcs what is watched. A service that keeps its name keeps its
// burst, and a root that stays keeps what was known of it, so an upload that
// spans a config reload still makes one Change.
func (st *runState) replace(svcs []*service, now time.Time) error {
	old := make(map[string]*service, len(st.services))
	for _, s := range st.services {
		old[s.name] = s
	}
	for _, s := range svcs {
		o := old[s.name]
		if o == nil {
			continue
		}
		s.burst = o.burst
		for _, r := range s.roots {
			for _, or := range o.roots {
				if or.path == r.path {
					*r = *or
				}
			}
		}
		if s.burst.pending {
			st.arm(s.burst.last.Add(s.quiet), now)
		}
	}
	st.services = svcs
	return st.sync(now)
}

// sync resolves every root, then drops the watches no root needs any more.
// It walks every watched folder, so it runs on Set and after an overflow,
// never per event.
func (st *runState) sync(now time.Time) error {
	need := make(map[string]struct{}, len(st.watched))
	var errs []error
	for _, s := range st.services {
		for _, r := range s.roots {
			if err := st.resolve(s, r, need, now); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for dir := range st.watched {
		if _, ok := need[dir]; !ok {
			st.unwatch(dir)
		}
	}
	return errors.Join(errs...)
}

// handle is the per-event path: string comparisons for every root, and a
// system call only for creations, removals and renames.
func (st *runState) handle(ev fsnotify.Event, now time.Time) {
	p, op := ev.Name, ev.Op
	structural := op.Has(fsnotify.Create) || op.Has(fsnotify.Remove) || op.Has(fsnotify.Rename)
	chmodOnly := op&^fsnotify.Chmod == 0
	if structural {
		st.forgetReplaced(p, op)
	}
	statted, isDir := false, false
	for _, s := range st.services {
		for _, r := range s.roots {
			switch {
			case p == r.path:
				if chmodOnly && r.exists && r.isDir {
					continue
				}
				st.mark(s, p, now)
				if structural {
					st.reresolve(s, r, now)
				}
			case r.exists && r.isDir && under(p, r.path):
				if chmodOnly || s.ignored(relTo(r.path, p)) {
					continue
				}
				st.mark(s, p, now)
				if !op.Has(fsnotify.Create) {
					continue
				}
				if !statted {
					fi, err := os.Lstat(p)
					statted, isDir = true, err == nil && fi.IsDir()
				}
				if isDir {
					// The Create is already a change, so files copied into
					// the folder before this watch exists are not lost.
					if err := st.addTree(s, r.path, p, nil); err != nil && !errors.Is(err, fs.ErrNotExist) {
						st.log.Warn("watching new folder", "service", s.name, "err", err)
					}
				}
			case structural && under(r.path, p):
				// Something on the way to a root appeared, went away or
				// was replaced (a symbolic link swapped to a new release).
				st.reresolve(s, r, now)
			}
		}
	}
}

func (st *runState) reresolve(s *service, r *root, now time.Time) {
	if err := st.resolve(s, r, nil, now); err != nil {
		st.log.Warn("watching files", "err", err)
	}
}

// resolve adds the watches r needs now (recording them in need, if not nil)
// and counts r appearing, disappearing or leading to another file or
// folder (a symbolic link on the way swapped) as a change.
func (st *runState) resolve(s *service, r *root, need map[string]struct{}, now time.Time) error {
	wasKnown, existed, was := r.known, r.exists, r.fi
	err := st.locate(s, r, need)
	r.known = true
	if wasKnown && (existed != r.exists || existed && r.exists && !os.SameFile(was, r.fi)) {
		st.mark(s, r.path, now)
	}
	if err != nil {
		return fmt.Errorf("watch: service %s: %w", s.name, err)
	}
	return nil
}

// locate finds out what r is and watches accordingly: a folder and all its
// subfolders, a file's folder, or a missing path's nearest existing ancestor;
// and, for a path that exists, the folders of the symbolic links on its way.
// The path can change while we look, so it looks again after adding a watch,
// a bounded number of times.
func (st *runState) locate(s *service, r *root, need map[string]struct{}) error {
	for range 8 {
		fi, err := os.Stat(r.path)
		switch {
		case err == nil:
			r.exists, r.isDir, r.fi = true, fi.IsDir(), fi
			// Its folder even for a folder: a folder renamed over the root,
			// or a symlink swapped, shows up there and nowhere else.
			err := st.add(filepath.Dir(r.path), need)
			if err == nil && r.isDir {
				err = st.addTree(s, r.path, r.path, need)
			}
			if err == nil {
				err = st.addLinkFolders(r.path, need)
			}
			if errors.Is(err, fs.ErrNotExist) {
				continue // the root or a folder on its way went away meanwhile
			}
			return err
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			r.exists, r.isDir, r.fi = false, false, nil
			return err
		}
		r.exists, r.isDir, r.fi = false, false, nil
		anc := nearestDir(r.path)
		if err := st.add(anc, need); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		// If the next step towards r appeared before the watch was in place,
		// its Create is lost: look again rather than wait for it.
		next := childToward(anc, r.path)
		if fi, err := os.Stat(next); err == nil && (next == r.path || fi.IsDir()) {
			continue
		}
		return nil
	}
	return fmt.Errorf("%s keeps changing while watches are added", r.path)
}

// addTree watches dir and, recursively, its subfolders that s does not
// ignore. Each folder is watched before it is listed, so a subfolder made in
// between is either listed or reported by the watch.
func (st *runState) addTree(s *service, rootPath, dir string, need map[string]struct{}) error {
	if err := st.add(dir, need); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile; its Remove event is on the way
		}
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() { // symbolic links are not followed: no loops
			continue
		}
		sub := filepath.Join(dir, e.Name())
		if s.ignored(relTo(rootPath, sub)) {
			continue
		}
		err := st.addTree(s, rootPath, sub, need)
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, syscall.ENOSPC):
			// Out of watches: every further folder would fail the same way.
			return errors.Join(append(errs, err)...)
		default:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// addLinkFolders watches the folder of each symbolic link on the way to p,
// as p spells it (the "current" of current/bin/web): a link swapped to
// another release shows up in its folder and nowhere else. Then handle
// finds p under the swapped link and resolves p again.
func (st *runState) addLinkFolders(p string, need map[string]struct{}) error {
	for d := filepath.Dir(p); d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		if err != nil {
			return fmt.Errorf("watching %s: %w", d, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if err := st.add(filepath.Dir(d), need); err != nil {
			return err
		}
	}
	return nil
}

// add watches dir. Adding an existing watch again is harmless. The folder is
// looked at before the watch is added, so if it is replaced in between, the
// replacement's Create finds it different and forgetReplaced renews the watch.
func (st *runState) add(dir string, need map[string]struct{}) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	if err := st.fsw.Add(dir); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("watching %s: %w (raise the sysctl fs.inotify.max_user_watches)", dir, err)
		}
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	st.watched[dir] = fi
	if need != nil {
		need[dir] = struct{}{}
	}
	return nil
}

// forgetReplaced drops the watches at and below p if p was a watched folder
// and is gone or no longer the same folder. Kernel watches follow the folder,
// not the path: a renamed folder's subfolders, or the target of a swapped
// symlink, would go on reporting under the old path.
func (st *runState) forgetReplaced(p string, op fsnotify.Op) {
	old, ok := st.watched[p]
	if !ok {
		return // not a folder we watch: the common case, kept cheap
	}
	if !op.Has(fsnotify.Remove) && !op.Has(fsnotify.Rename) {
		// A Create of a folder already watched: reported twice (by its parent,
		// after we found it by listing), or replaced.
		if fi, err := os.Stat(p); err == nil && os.SameFile(fi, old) {
			return
		}
	}
	for dir := range st.watched {
		if dir == p || under(dir, p) {
			st.unwatch(dir)
		}
	}
}

func (st *runState) unwatch(dir string) {
	delete(st.watched, dir)
	if err := st.fsw.Remove(dir); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
		st.log.Debug("removing watch", "dir", dir, "err", err)
	}
}

// nearestDir returns the closest existing folder above p.
func nearestDir(p string) string {
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); (err == nil && fi.IsDir()) || d == filepath.Dir(d) {
			return d
		}
	}
}

// childToward returns the entry of folder anc on the way to p, which is below
// anc.
func childToward(anc, p string) string {
	rest := strings.TrimPrefix(p[len(anc):], "/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return filepath.Join(anc, rest)
}
