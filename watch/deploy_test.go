package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The deploy styles of the auto_restart issue: each upload must make exactly
// one Change once it is over. Pauses inside an upload are shorter than quiet;
// they stand for a slow network, not for synchronisation.

func TestRenameIntoPlace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		tempDir func(binDir string) string
	}{
		{"temp file in the same folder (rsync)", func(binDir string) string { return binDir }},
		{"file from another folder (mv)", func(string) string { return t.TempDir() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			bin := filepath.Join(dir, "web")
			writeFile(t, bin, "v1")
			w := startWatcher(t, Spec{Name: "web", Files: []string{bin}, Ignore: defaultIgnore, Quiet: quiet})

			tmp := filepath.Join(tc.tempDir(dir), ".web.Xy12Zq")
			writeFile(t, tmp, "v2")
			if err := os.Chmod(tmp, 0o755); err != nil {
				t.Fatal(err)
			}
			rename(t, tmp, bin)

			wantPaths(t, expectOneChange(t, w, "web"), bin)
		})
	}
}

func TestDeleteAndSlowRewrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "web")
	writeFile(t, bin, "v1")
	w := startWatcher(t, Spec{Name: "web", Files: []string{bin}, Quiet: quiet})

	remove(t, bin)
	f, err := os.Create(bin)
	if err != nil {
		t.Fatal(err)
	}
	const chunks = 6 // 6 pauses of quiet/5: the upload lasts longer than quiet
	for range chunks {
		time.Sleep(quiet / 5)
		if _, err := f.WriteString(strings.Repeat("x", 4096)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o755); err != nil { // chmod +x ends the upload
		t.Fatal(err)
	}

	c := expectOneChange(t, w, "web")
	wantPaths(t, c, bin)
	if got := c.Last.Sub(c.First); got < quiet {
		t.Errorf("burst lasted %v, want at least %v: the upload was split", got, quiet)
	}
}

func TestCopyManyFilesIntoFolder(t *testing.T) {
	t.Parallel()
	site := filepath.Join(t.TempDir(), "site")
	mkdirAll(t, filepath.Join(site, "old"))
	writeFile(t, filepath.Join(site, "old", "keep.txt"), "v1")
	w := startWatcher(t, Spec{Name: "site", Files: []string{site}, Ignore: defaultIgnore, Quiet: quiet})

	newDir := filepath.Join(site, "new")
	deep := filepath.Join(newDir, "deep")
	for i := range 50 {
		var dst string
		switch {
		case i < 20:
			dst = filepath.Join(site, fmt.Sprintf("f%02d.html", i))
		case i == 20:
			mkdirAll(t, deep) // two folders at once, mid-copy
			fallthrough
		case i%2 == 0:
			dst = filepath.Join(newDir, fmt.Sprintf("f%02d.html", i))
		default:
			dst = filepath.Join(deep, fmt.Sprintf("f%02d.html", i))
		}
		writeFile(t, dst, "page")
		time.Sleep(quiet / 10)
	}
	c := expectOneChange(t, w, "site")
	if len(c.Paths) == 0 || len(c.Paths) > maxPaths {
		t.Errorf("change has %d paths, want 1..%d", len(c.Paths), maxPaths)
	}

	// The folders made during the copy are watched now, and so is the one
	// that was there at the start.
	later := []string{
		filepath.Join(deep, "later.html"),
		filepath.Join(newDir, "later.html"),
		filepath.Join(site, "old", "keep.txt"),
	}
	for _, p := range later {
		writeFile(t, p, "v2")
	}
	wantPaths(t, expectChange(t, w, "site"), later...)
}

func TestEditorSaveByRename(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		watch func(dir, file string) string
	}{
		{"watched file", func(_, file string) string { return file }},
		{"watched folder", func(dir, _ string) string { return dir }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, "app.yaml")
			writeFile(t, file, "port: 1")
			w := startWatcher(t, Spec{Name: "app", Files: []string{tc.watch(dir, file)}, Ignore: defaultIgnore, Quiet: quiet})

			// vim with backupcopy=no: swap file, original renamed to a
			// backup, new file written, backup and swap removed.
			swap := filepath.Join(dir, ".app.yaml.swp")
			backup := file + "~"
			writeFile(t, swap, "swap")
			rename(t, file, backup)
			writeFile(t, file, "port: 2")
			remove(t, backup)
			remove(t, swap)

			wantPaths(t, expectOneChange(t, w, "app"), file)
		})
	}
}

func TestIgnoredFilesOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.html")
	writeFile(t, existing, "x")
	w := startWatcher(t, Spec{Name: "site", Files: []string{dir}, Ignore: defaultIgnore, Quiet: quiet})

	if err := os.Chmod(existing, 0o600); err != nil { // pure chmods below a folder do not count
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "a.swp"), "x")
	writeFile(t, filepath.Join(dir, "b.tmp"), "x")
	writeFile(t, filepath.Join(dir, "c~"), "x")
	mkdirAll(t, filepath.Join(dir, ".git", "objects"))
	writeFile(t, filepath.Join(dir, ".git", "HEAD"), "ref: refs/heads/main")
	writeFile(t, filepath.Join(dir, ".git", "objects", "ab"), "x")
	remove(t, filepath.Join(dir, "b.tmp"))
	expectNoChange(t, w, 3*quiet)
	if watching(w, filepath.Join(dir, ".git")) {
		t.Error("an ignored folder is watched")
	}

	// The watcher was listening all along.
	real := filepath.Join(dir, "index.html")
	writeFile(t, real, "x")
	wantPaths(t, expectChange(t, w, "site"), real)
}

func TestPathCreatedLater(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		root   string // relative to the test's folder; does not exist at Set
		create func(t *testing.T, root string) string
	}{
		{"folder two levels down", "later/site", func(t *testing.T, root string) string {
			mkdirAll(t, filepath.Join(root, "sub"))
			writeFile(t, filepath.Join(root, "sub", "index.html"), "x")
			return filepath.Join(root, "sub", "again.html")
		}},
		{"file in a missing folder, renamed into place", "bin/web", func(t *testing.T, root string) string {
			mkdirAll(t, filepath.Dir(root))
			writeFile(t, root+".part", "v1")
			rename(t, root+".part", root)
			return root
		}},
		{"file in an existing folder", "web", func(t *testing.T, root string) string {
			writeFile(t, root, "v1")
			return root
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), tc.root)
			w := startWatcher(t, Spec{Name: "svc", Files: []string{root}, Quiet: quiet})

			next := tc.create(t, root)
			c := expectOneChange(t, w, "svc")
			if !strings.HasPrefix(c.Paths[0], filepath.Dir(root)) {
				t.Errorf("paths %q, want paths at %s", c.Paths, root)
			}

			// Now the path itself is watched.
			writeFile(t, next, "v2")
			wantPaths(t, expectChange(t, w, "svc"), next)
		})
	}
}

func TestFolderReplaced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup makes the live release at root and the next one at next;
		// swap makes next live and returns where the old one went.
		setup func(t *testing.T, base, root, next string)
		swap  func(t *testing.T, base, root, next string) string
	}{
		{"renamed over",
			func(t *testing.T, base, root, next string) {
				mkdirAll(t, filepath.Join(root, "gone"))
				mkdirAll(t, filepath.Join(next, "sub"))
			},
			func(t *testing.T, base, root, next string) string {
				rename(t, root, root+".old")
				rename(t, next, root)
				return root + ".old"
			}},
		{"symlink swapped",
			func(t *testing.T, base, root, next string) {
				mkdirAll(t, filepath.Join(base, "v1", "gone"))
				mkdirAll(t, filepath.Join(next, "sub"))
				if err := os.Symlink("v1", root); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, base, root, next string) string {
				if err := os.Symlink(filepath.Base(next), root+".tmp"); err != nil {
					t.Fatal(err)
				}
				rename(t, root+".tmp", root) // ln -sfn, atomically
				return filepath.Join(base, "v1")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			root, next := filepath.Join(base, "current"), filepath.Join(base, "v2")
			tc.setup(t, base, root, next)
			w := startWatcher(t, Spec{Name: "site", Files: []string{root}, Quiet: quiet})

			old := tc.swap(t, base, root, next)
			wantPaths(t, expectOneChange(t, w, "site"), root)

			// The old release is not watched any more (its subfolder "gone"
			// is not in the new one, so no watch is renewed on that path);
			// the new release is, subfolders included.
			writeFile(t, filepath.Join(old, "gone", "x"), "x")
			expectNoChange(t, w, 3*quiet)
			a, b := filepath.Join(root, "a"), filepath.Join(root, "sub", "b")
			writeFile(t, a, "x")
			writeFile(t, b, "x")
			wantPaths(t, expectChange(t, w, "site"), a, b)
		})
	}
}

// A Capistrano-style release switch: the watched path goes through a
// symbolic link ("current" of current/web) that is swapped atomically to
// the next release. The swap is a change, and the watches follow it.
func TestSymlinkOnTheWaySwapped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		rel   string // the watched path below current
		isDir bool
	}{
		{"executable", "web", false},
		{"folder", "views", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			for _, v := range []string{"v1", "v2"} {
				if tc.isDir {
					writeFileIn(t, filepath.Join(base, v, tc.rel), "index.html", v)
				} else {
					writeFileIn(t, filepath.Join(base, v), tc.rel, v)
				}
			}
			current := filepath.Join(base, "current")
			if err := os.Symlink("v1", current); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(current, tc.rel)
			w := startWatcher(t, Spec{Name: "web", Files: []string{root}, Quiet: quiet})

			if err := os.Symlink("v2", current+".tmp"); err != nil {
				t.Fatal(err)
			}
			rename(t, current+".tmp", current) // ln -s v2 current.tmp && mv -T current.tmp current
			wantPaths(t, expectOneChange(t, w, "web"), root)

			// The old release is not watched any more; the new one is.
			changed := root
			if tc.isDir {
				writeFileIn(t, filepath.Join(base, "v1", tc.rel), "old.html", "x")
				expectNoChange(t, w, 3*quiet)
				writeFileIn(t, filepath.Join(base, "v2", tc.rel), "new.html", "x")
				changed = filepath.Join(root, "new.html")
			} else {
				writeFile(t, filepath.Join(base, "v1", tc.rel), "x")
				expectNoChange(t, w, 3*quiet)
				writeFile(t, filepath.Join(base, "v2", tc.rel), "v2, rewritten")
			}
			wantPaths(t, expectChange(t, w, "web"), changed)
		})
	}
}

// writeFileIn writes dir/name, making dir first.
func writeFileIn(t *testing.T, dir, name, data string) {
	t.Helper()
	mkdirAll(t, dir)
	writeFile(t, filepath.Join(dir, name), data)
}
