package watch

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func TestSetReplacesSpecs(t *testing.T) {
	t.Parallel()
	oldDir, newDir := t.TempDir(), t.TempDir()
	w := startWatcher(t, Spec{Name: "app", Files: []string{oldDir}, Quiet: quiet})
	writeFile(t, filepath.Join(oldDir, "a"), "x")
	expectChange(t, w, "app")

	if err := w.Set([]Spec{{Name: "app", Files: []string{newDir}, Quiet: quiet}}); err != nil {
		t.Fatal(err)
	}
	if watching(w, oldDir) {
		t.Errorf("%s is still watched after Set", oldDir)
	}
	writeFile(t, filepath.Join(oldDir, "b"), "x")
	expectNoChange(t, w, 3*quiet)

	p := filepath.Join(newDir, "c")
	writeFile(t, p, "x")
	wantPaths(t, expectOneChange(t, w, "app"), p)

	if err := w.Set(nil); err != nil {
		t.Fatal(err)
	}
	if list := w.fsw.WatchList(); len(list) != 0 {
		t.Errorf("watching %q after Set(nil), want nothing", list)
	}
}

// A config reload during an upload must not split it in two.
func TestSetKeepsBurstInProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := Spec{Name: "app", Files: []string{dir}, Quiet: quiet}
	w := startWatcher(t, spec)

	first := filepath.Join(dir, "first")
	writeFile(t, first, "x")
	spec.Files = append(spec.Files, filepath.Join(dir, "app.yaml"))
	if err := w.Set([]Spec{spec}); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(dir, "second")
	writeFile(t, second, "x")

	wantPaths(t, expectOneChange(t, w, "app"), first, second)
}

func TestServicesSharingAFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.yaml")
	writeFile(t, conf, "v1")
	w := startWatcher(t,
		Spec{Name: "a", Files: []string{dir}, Ignore: defaultIgnore, Quiet: quiet},
		Spec{Name: "b", Files: []string{conf, filepath.Join(dir, "b-bin")}, Quiet: quiet},
	)
	writeFile(t, conf, "v2")

	got := map[string]int{}
	for range 2 {
		c := nextChange(t, w)
		wantPaths(t, c, conf)
		got[c.Name]++
	}
	expectNoChange(t, w, 3*quiet)
	if got["a"] != 1 || got["b"] != 1 {
		t.Errorf("changes per service %v, want one each for a and b", got)
	}

	// A file only a watches changes only a.
	writeFile(t, filepath.Join(dir, "index.html"), "x")
	expectChange(t, w, "a")
}

func TestOverflowChangesEveryService(t *testing.T) {
	t.Parallel()
	dirA, dirB := t.TempDir(), t.TempDir()
	w := startWatcher(t,
		Spec{Name: "a", Files: []string{dirA}, Quiet: quiet},
		Spec{Name: "b", Files: []string{dirB}, Quiet: quiet},
	)
	select {
	case w.fsw.Errors <- fsnotify.ErrEventOverflow: // what the inotify backend sends
	case <-time.After(waitLimit):
		t.Fatal("Run did not read the error")
	}
	want := map[string]string{"a": dirA, "b": dirB}
	for range 2 {
		c := nextChange(t, w)
		wantPaths(t, c, want[c.Name])
		delete(want, c.Name)
	}
	expectNoChange(t, w, 3*quiet)
}

func TestRunStopsOnCancel(t *testing.T) {
	// Not parallel: it counts the goroutines of the whole process.
	before := runtime.NumGoroutine()
	dir := t.TempDir()

	w, err := New(testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitUntil(t, "Run to start", w.isRunning)
	if err := w.Set([]Spec{{Name: "app", Files: []string{dir}, Quiet: quiet}}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "a"), "x") // a burst in progress at cancel

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Run did not return within %v of cancel", waitLimit)
	}
	select {
	case c, ok := <-w.Changes():
		if ok {
			t.Errorf("Changes sent %+v after Run returned, want it closed", c)
		}
	case <-time.After(waitLimit):
		t.Error("Changes not closed after Run returned")
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("second Run returned nil, want an error")
	}

	setDone := make(chan error, 1)
	go func() { setDone <- w.Set([]Spec{{Name: "app", Files: []string{dir}}}) }()
	select {
	case err := <-setDone:
		if err != nil {
			t.Errorf("Set after Run returned: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Set blocked after Run returned")
	}

	waitUntil(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}
