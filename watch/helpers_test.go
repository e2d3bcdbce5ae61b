package watch

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

const (
	// quiet is the tests' debounce. The steps of one upload or save
	// follow each other within it; it is long enough that a loaded
	// machine, holding up a test between two of them, does not make a
	// quiet period of that.
	quiet     = 500 * time.Millisecond
	waitLimit = 5 * time.Second // bound on every wait for something that should happen
)

var defaultIgnore = []string{"*.swp", "*~", "*.tmp", ".git/"}

// TestMain lets the tests run 8 at a time unless -parallel says otherwise:
// they spend their time waiting out quiet periods, not on a CPU, and the
// default (GOMAXPROCS) would serialise them on a small machine.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit && runtime.GOMAXPROCS(0) < 8 {
		if err := flag.Set("test.parallel", "8"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startWatcher runs a Watcher for the rest of the test, with specs in place.
func startWatcher(t *testing.T, specs ...Spec) *Watcher {
	t.Helper()
	w, err := New(testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run did not return within %v of cancel", waitLimit)
		}
	})
	// Set waits for the watches only once Run is running.
	waitUntil(t, "Run to start", w.isRunning)
	if err := w.Set(specs); err != nil {
		t.Fatalf("Set: %v", err)
	}
	return w
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// nextChange waits, bounded, for the next Change.
func nextChange(t *testing.T, w *Watcher) Change {
	t.Helper()
	select {
	case c, ok := <-w.Changes():
		if !ok {
			t.Fatal("Changes closed")
		}
		return c
	case <-time.After(waitLimit):
		t.Fatalf("no change within %v", waitLimit)
	}
	panic("unreachable")
}

// expectChange waits for a Change of service name.
func expectChange(t *testing.T, w *Watcher, name string) Change {
	t.Helper()
	c := nextChange(t, w)
	if c.Name != name {
		t.Fatalf("change of %q, want %q: %+v", c.Name, name, c)
	}
	return c
}

// expectOneChange waits for a Change of service name, then asserts that no
// second one follows within 3×quiet.
func expectOneChange(t *testing.T, w *Watcher, name string) Change {
	t.Helper()
	c := expectChange(t, w, name)
	expectNoChange(t, w, 3*quiet)
	return c
}

func expectNoChange(t *testing.T, w *Watcher, d time.Duration) {
	t.Helper()
	select {
	case c := <-w.Changes():
		t.Fatalf("unexpected change: %+v", c)
	case <-time.After(d):
	}
}

func wantPaths(t *testing.T, c Change, want ...string) {
	t.Helper()
	if !slices.Equal(c.Paths, want) {
		t.Fatalf("change of %s: paths %q, want %q", c.Name, c.Paths, want)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdirAll(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// watching reports whether the kernel watcher has a watch on dir.
func watching(w *Watcher, dir string) bool {
	return slices.Contains(w.fsw.WatchList(), filepath.Clean(dir))
}
