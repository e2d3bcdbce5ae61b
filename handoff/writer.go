package handoff

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A Writer writes the state file at one path again and again, as Write
// does, each file whole for a reader, but without a new file each time.
// The daemon writes it at every start and stop of an instance, and a new
// file renamed over the old one was the dearest part of a restart on ext4:
// an inode created and one freed, and the replacement's blocks allocated
// and written out during the rename (ext4's auto_da_alloc).
//
// The text goes into a spare file beside path, written over in place and
// then exchanged with path in one step (renameat2 RENAME_EXCHANGE): the
// spare then holds the text before, to be written over next time. The
// spare's name holds the writer's pid, so that two processes writing one
// state file (an upgrade's old and new daemon, for a moment) never write
// into one spare. A spare is written only if it is a file of its own: a
// regular file of this process's user with one link (what came from path
// in an exchange may be a symbolic link, a hard link, another user's
// file), else it is made anew; and it is made 0600. Where path does not
// exist yet, or the exchange fails, the spare is renamed to path, as
// WriteFile does; where the file system cannot exchange at all, every
// write is WriteFile's.
//
// What a reader sees: path always names a whole file. A reader that keeps
// it open across the next two writes could read it being written over;
// the daemon reads it only when no other process writes it (the old one
// is frozen during a hand-over; a crashed one writes nothing). After a
// power loss the file may be older than the last write, empty, or a mix
// of two writes (no rename asks ext4 to write it out first, and writes
// in place are not ordered): Read fails or lists processes that are gone,
// and the instances it listed are gone anyway.
//
// A Writer is not safe for concurrent use; the supervisor serialises its
// writes.
type Writer struct {
	path, spare string
	swept       bool // stale spares were removed
	spareMade   bool // a file of ours is at the spare's name
	noExchange  bool // the file system refused an exchange: WriteFile
	// exchange swaps the files at two paths; renameat2 but in tests.
	exchange func(a, b string) error
}

// NewWriter returns a Writer of the state file at path.
func NewWriter(path string) *Writer {
	return &Writer{path: path, spare: spareName(path, os.Getpid()), exchange: exchange}
}

func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// sparePrefix begins the name of every spare of the state file at path.
func sparePrefix(path string) string {
	return "." + filepath.Base(path) + ".spare."
}

func spareName(path string, pid int) string {
	return filepath.Join(filepath.Dir(path), sparePrefix(path)+strconv.Itoa(pid))
}

// Write replaces the state file with st.
func (w *Writer) Write(st *State) error {
	data, err := marshal(st)
	if err != nil {
		return fmt.Errorf("writing state file %s: %w", w.path, err)
	}
	if err := w.write(data); err != nil {
		return fmt.Errorf("writing state file %w", err)
	}
	return nil
}

func (w *Writer) write(data []byte) error {
	if w.noExchange {
		return WriteFile(w.path, data)
	}
	if !w.swept {
		removeStaleSpares(w.path)
		w.swept = true
	}
	if err := w.writeSpare(data); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	err := w.exchange(w.spare, w.path)
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, syscall.ENOENT): // no state file yet
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSYS),
		errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EPERM):
		w.noExchange = true // a file system (or a sandbox) without it
	}
	// The spare becomes the state file, as WriteFile's temporary file does.
	if rerr := os.Rename(w.spare, w.path); rerr != nil {
		return fmt.Errorf("%s: exchanging with %s: %v; renaming it: %w", w.path, filepath.Base(w.spare), err, rerr)
	}
	w.spareMade = false
	return nil
}

// writeSpare makes the spare hold data: written over in place when it is
// a file of its own, else made anew; the folder too, if it is gone.
func (w *Writer) writeSpare(data []byte) error {
	fd, err := w.openSpare()
	if err != nil {
		return err
	}
	name := filepath.Base(w.spare)
	for off := 0; off < len(data); {
		n, err := unix.Pwrite(fd, data[off:], int64(off))
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("writing %s: %w", name, err)
		}
		off += n
	}
	if err := unix.Ftruncate(fd, int64(len(data))); err != nil {
		unix.Close(fd)
		return fmt.Errorf("truncating %s: %w", name, err)
	}
	// Some file systems (NFS) say only now that the data did not fit.
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("closing %s: %w", name, err)
	}
	return nil
}

// openSpare opens the spare for writing, if it is a regular file of this
// process's user with one link, made 0600; anything else at its name is
// removed and the spare made anew.
func (w *Writer) openSpare() (int, error) {
	name := filepath.Base(w.spare)
	// O_NONBLOCK: a FIFO there fails the open (ENXIO) instead of
	// blocking it; regular files ignore it.
	const flags = unix.O_WRONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	fd, err := unix.Open(w.spare, flags|unix.O_CREAT, 0o600)
	if errors.Is(err, syscall.ENOENT) { // the folder is gone (or not made yet)
		if err := os.MkdirAll(filepath.Dir(w.spare), 0o700); err != nil {
			return -1, fmt.Errorf("making the folder of %s: %w", name, err)
		}
		fd, err = unix.Open(w.spare, flags|unix.O_CREAT, 0o600)
	}
	if err == nil {
		if err = ownFile(fd); err == nil {
			w.spareMade = true
			return fd, nil
		}
		unix.Close(fd)
	}
	// Not ours to write over (see Writer): made anew. A file made here is
	// ours whatever owner the file system shows (NFS squashing, a vfat
	// mount's uid=), and its mode is set as far as the file system lets.
	if rerr := unix.Unlink(w.spare); rerr != nil && !errors.Is(rerr, syscall.ENOENT) {
		return -1, fmt.Errorf("%s: %v; removing it: %w", name, err, rerr)
	}
	fd, err = unix.Open(w.spare, flags|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return -1, fmt.Errorf("making %s: %w", name, err)
	}
	w.spareMade = true
	unix.Fchmod(fd, 0o600) // a umask may have made it less
	return fd, nil
}

// errNotOwn is why an open spare is not written over.
var errNotOwn = errors.New("not a file of this process's own")

// ownFile checks that fd is a regular file of this process's user with one
// link, and makes it 0600 (a umask may have made it less).
func ownFile(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || st.Uid != uint32(os.Geteuid()) {
		return errNotOwn
	}
	if st.Mode&0o7777 != 0o600 {
		return unix.Fchmod(fd, 0o600)
	}
	return nil
}

// Close removes the writer's spare, if it made one. The state file stays.
func (w *Writer) Close() error {
	if !w.spareMade {
		return nil
	}
	w.spareMade = false
	if err := os.Remove(w.spare); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state file %s: %w", w.path, err)
	}
	return nil
}

// Sweep has the next write remove the spares left by processes that are
// gone, as the first write does: after a failed upgrade, the new process
// may have left its own.
func (w *Writer) Sweep() { w.swept = false }

// removeStaleSpares removes the spares of path left by processes that are
// gone (a daemon killed before its Close).
func removeStaleSpares(path string) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := sparePrefix(path)
	for _, e := range entries {
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), prefix))
		if !strings.HasPrefix(e.Name(), prefix) || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		// Gone, or a zombie (a new daemon killed at a failed upgrade, not
		// reaped yet): its spare is of no use to anyone.
		if st, err := readStat(pid); errors.Is(err, ErrGone) || err == nil && st.Exited() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
