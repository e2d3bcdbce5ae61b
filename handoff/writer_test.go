package handoff

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// names lists the folder's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func readBack(t *testing.T, path string, want *State) {
	t.Helper()
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Read after a Writer's Write:\n got %+v\nwant %+v", got, want)
	}
}

// A Writer's writes exchange two files: the state file is always a whole
// one, no file is made after the second write, and the spare holds the
// text before.
func TestWriterExchangesTwoFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "state.json")
	w := NewWriter(path)
	spare := filepath.Join(dir, ".state.json.spare."+strconv.Itoa(os.Getpid()))

	st := sampleState()
	if err := w.Write(st); err != nil { // no file yet: the spare becomes it
		t.Fatal(err)
	}
	readBack(t, path, st)
	if got := names(t, dir); !slices.Equal(got, []string{"state.json"}) {
		t.Fatalf("after the first write the folder holds %v, want only state.json", got)
	}
	first := inode(t, path)

	var inodes []uint64
	for i := range 6 {
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Shorter and longer texts in turn: the spare is truncated.
		st.Instances = st.Instances[:1+i%2]
		st.DaemonPid = 5000 + i
		if err := w.Write(st); err != nil {
			t.Fatal(err)
		}
		readBack(t, path, st)
		if got, err := os.ReadFile(spare); err != nil || string(got) != string(before) {
			t.Fatalf("write %d: the spare holds %q (%v), want the text before, %q", i, got, err, before)
		}
		inodes = append(inodes, inode(t, path))
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("write %d: state file %v (%v), want mode 0600", i, fi.Mode(), err)
		}
	}
	second := inodes[0]
	if second == first {
		t.Fatalf("the second write left the state file's inode %d as it was", first)
	}
	for i, ino := range inodes {
		if want := []uint64{second, first}[i%2]; ino != want {
			t.Errorf("write %d: state file inode %d, want %d: the two files are exchanged, no new one made", i, ino, want)
		}
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"state.json"}) {
		t.Errorf("after Close the folder holds %v, want only state.json", got)
	}
	readBack(t, path, st)
	if err := w.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// The spares of processes that are gone are removed at the first write;
// a running process's spare is left alone.
func TestWriterRemovesStaleSpares(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	live := exec.Command("sleep", "30")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Process.Kill(); live.Wait() })
	// A process killed and not reaped yet (a zombie) is gone too.
	zombie := exec.Command("sleep", "30")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	zombie.Process.Kill()
	t.Cleanup(func() { zombie.Wait() })
	waitFor(t, "the killed child to be a zombie", 5*time.Second, func() bool {
		st, err := readStat(zombie.Process.Pid)
		return err == nil && st.Exited()
	})
	dead := ".state.json.spare." + strconv.Itoa(zombie.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, dead), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	stale := ".state.json.spare." + strconv.Itoa(gone.Process.Pid)
	kept := ".state.json.spare." + strconv.Itoa(live.Process.Pid)
	other := ".state.json.spare.x" // not a spare's name: not touched
	for _, n := range []string{stale, kept, other} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w := NewWriter(path)
	if err := w.Write(sampleState()); err != nil {
		t.Fatal(err)
	}
	got := names(t, dir)
	if slices.Contains(got, dead) {
		t.Errorf("the spare of zombie pid %d is still there: %v", zombie.Process.Pid, got)
	}
	if slices.Contains(got, stale) {
		t.Errorf("the spare of gone pid %d is still there: %v", gone.Process.Pid, got)
	}
	if !slices.Contains(got, kept) || !slices.Contains(got, other) {
		t.Errorf("a running process's spare, or another file, was removed: %v", got)
	}
}

// Where the file system cannot exchange, every write is a new file renamed
// over the state file, and no spare is left.
func TestWriterWithoutExchange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	w := NewWriter(path)
	calls := 0
	w.exchange = func(a, b string) error { calls++; return syscall.EINVAL }
	st := sampleState()
	if err := Write(path, st); err != nil { // a file there: the exchange is tried
		t.Fatal(err)
	}
	for i := range 3 {
		st.DaemonPid = 6000 + i
		if err := w.Write(st); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		readBack(t, path, st)
		if got := names(t, dir); !slices.Equal(got, []string{"state.json"}) {
			t.Fatalf("write %d: the folder holds %v, want only state.json", i, got)
		}
	}
	if calls != 1 {
		t.Errorf("the exchange was tried %d times, want once", calls)
	}
}

// An exchange that fails otherwise falls back to a rename, as WriteFile
// does, and the next write tries the exchange again.
func TestWriterExchangeError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	st := sampleState()
	if err := Write(path, st); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(path)
	calls := 0
	w.exchange = func(a, b string) error {
		if calls++; calls == 1 {
			return syscall.EIO
		}
		return exchange(a, b)
	}
	for i := range 3 {
		st.DaemonPid = 7000 + i
		if err := w.Write(st); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		readBack(t, path, st)
	}
	if calls != 3 {
		t.Errorf("the exchange was tried %d times, want 3: an error of one is no reason to stop", calls)
	}
}

// What an exchange brings to the spare's name is written over only if it
// is a regular file of this process's user with one link: another user's
// file, a hard link (a backup of the state file), a file made under a
// tight umask are made anew or made 0600, and the writes go on.
func TestWriterSpareIsItsOwn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	backup := filepath.Join(dir, "backup.json")
	st := sampleState()
	if err := Write(path, st); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, backup); err != nil {
		t.Fatal(err)
	}
	kept, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(path)
	for i := range 4 {
		st.DaemonPid = 9000 + i
		if err := w.Write(st); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		readBack(t, path, st)
		if got, err := os.ReadFile(backup); err != nil || string(got) != string(kept) {
			t.Fatalf("write %d wrote into a hard link of the old state file: %q (%v)", i, got, err)
		}
		if i == 1 && os.Geteuid() == 0 {
			// The file at the spare's name now (the state file before)
			// belongs to another user, 0644.
			spare := filepath.Join(dir, ".state.json.spare."+strconv.Itoa(os.Getpid()))
			if err := os.Chown(spare, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(spare, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
			t.Errorf("write %d: the state file is %v, uid %d; want 0600, this process's", i, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
		}
	}

	old := syscall.Umask(0o277)
	defer syscall.Umask(old)
	path2 := filepath.Join(dir, "tight.json")
	w2 := NewWriter(path2)
	for i := range 3 {
		if err := w2.Write(st); err != nil {
			t.Fatalf("umask 0277, write %d: %v", i, err)
		}
		readBack(t, path2, st)
		if fi, err := os.Stat(path2); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("umask 0277, write %d: the state file is %v (%v), want 0600", i, fi.Mode(), err)
		}
	}
}

// The state file's folder, removed after a write, is made again.
func TestWriterFolderRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "state.json")
	w := NewWriter(path)
	st := sampleState()
	for i := range 3 {
		if err := w.Write(st); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		readBack(t, path, st)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
}

// Two writers of one state file (an upgrade's two daemons) taking turns:
// the state file is always the last one written, and each writer's spare
// is its own.
func TestWritersTakingTurns(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	a, b := NewWriter(path), NewWriter(path)
	b.spare = spareName(path, os.Getpid()+1) // as another process's
	st := sampleState()
	for i := range 8 {
		st.DaemonPid = 100 + i
		w := []*Writer{a, b}[i%2]
		if err := w.Write(st); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		readBack(t, path, st)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"state.json"}) {
		t.Errorf("after both Close the folder holds %v, want only state.json", got)
	}
}

// A state file that is a symbolic link is replaced by a file, as a
// rename over it would, and the writes after go on.
func TestWriterOverASymlink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	elsewhere := filepath.Join(dir, "elsewhere.json")
	if err := Write(elsewhere, sampleState()); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, path); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(path)
	st := sampleState()
	for i := range 3 {
		st.DaemonPid = 8000 + i
		if err := w.Write(st); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		readBack(t, path, st)
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("write %d: the state file is %v (%v), want a regular file", i, fi.Mode(), err)
		}
	}
}

// A write whose exchange and rename both fail is an error naming the
// state file, and Close still removes the spare it made.
func TestWriterCloseAfterAFailedWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.MkdirAll(filepath.Join(path, "inside"), 0o700); err != nil { // a rename over it fails
		t.Fatal(err)
	}
	w := NewWriter(path)
	w.exchange = func(a, b string) error { return syscall.EBUSY }
	if err := w.Write(sampleState()); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Write: %v, want an error naming %s", err, path)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"state.json"}) {
		t.Errorf("after Close the folder holds %v, want only state.json (the spare removed)", got)
	}
}
