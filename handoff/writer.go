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
// into one spare. Where path does not exist yet, the spare is renamed to
// it; where the file system cannot exchange, every write is WriteFile's.
//
// A reader that opened path before one exchange and still reads it after
// the next write could read the spare being written over; reads of the
// state file are one read(2) of a few KiB, and writes are tens of
// milliseconds apart at the least.
//
// A Writer is not safe for concurrent use; the supervisor serialises its
// writes.
type Writer struct {
	path, spare string
	ready       bool // the folder exists and stale spares are removed
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
	if !w.ready {
		if err := os.MkdirAll(filepath.Dir(w.path), 0o700); err != nil {
			return fmt.Errorf("%s: %w", w.path, err)
		}
		removeStaleSpares(w.path)
		w.ready = true
	}
	err := writeOver(w.spare, data)
	if errors.Is(err, syscall.ELOOP) {
		// A symbolic link at the state file's path came here in the last
		// exchange: the next file is a file of its own.
		os.Remove(w.spare)
		err = writeOver(w.spare, data)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	err = w.exchange(w.spare, w.path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOENT):
		// No state file yet: the spare becomes it.
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.EOPNOTSUPP):
		w.noExchange = true // and this once, the spare is renamed over it
	default:
		return fmt.Errorf("%s: exchanging with %s: %w", w.path, filepath.Base(w.spare), err)
	}
	if err := os.Rename(w.spare, w.path); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	return nil
}

// writeOver makes the file at path hold data, written over in place
// (created 0600 if missing).
func writeOver(path string, data []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", filepath.Base(path), err)
	}
	defer unix.Close(fd)
	for off := 0; off < len(data); {
		n, err := unix.Pwrite(fd, data[off:], int64(off))
		if err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
		}
		off += n
	}
	if err := unix.Ftruncate(fd, int64(len(data))); err != nil {
		return fmt.Errorf("truncating %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Close removes the writer's spare. The state file stays.
func (w *Writer) Close() error {
	if err := os.Remove(w.spare); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state file %s: %w", w.path, err)
	}
	return nil
}

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
		if !strings.HasPrefix(e.Name(), prefix) || err != nil || pid == os.Getpid() {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
