package handoff

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func sampleState() *State {
	return &State{
		Version:   1,
		DaemonPid: 4242,
		WrittenAt: time.Date(2025, 3, 1, 12, 0, 0, 123, time.UTC),
		Services:  map[string]string{"web": Fingerprint("web", "./web"), "api": Fingerprint("api")},
		Instances: []Instance{
			// Session 0 (a session whose leader is outside this pid
			// namespace) is recorded, not taken for none.
			{Service: "web", Slot: 0, Port: 8080, Pid: 100, StartTime: 12345, Exe: "/srv/web", Session: new(0), State: "ready"},
			{Service: "api", Slot: 1, Port: 9001, Pid: 101, StartTime: 12346, Exe: "/srv/api", Session: new(77), State: "draining"},
			{Service: "api", Slot: 2, Port: 9002, Pid: 102, StartTime: 12347, Exe: "/srv/api", State: "ready"}, // an older version's
		},
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "state.json")
	want := sampleState()
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read after Write:\n got %+v\nwant %+v", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode = %v, want 0600", mode)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only state.json: %v", len(entries), entries)
	}
}

func TestWriteZeroVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := Write(path, &State{}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != Version || got.Services == nil {
		t.Errorf("got version %d, services %v; want version %d and an empty map", got.Version, got.Services, Version)
	}
}

func TestReadMissing(t *testing.T) {
	got, err := Read(filepath.Join(t.TempDir(), "absent.json"))
	if err != nil {
		t.Fatalf("Read of a missing file: %v", err)
	}
	if len(got.Instances) != 0 || len(got.Services) != 0 || got.Services == nil {
		t.Errorf("got %+v, want an empty State with a usable Services map", got)
	}
}

func TestReadCorrupt(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, want string }{
		{"truncated", `{"version":1,"instances":[{"pid":`, "corrupt"},
		{"empty", ``, "corrupt"},
		{"newer", `{"version":2}`, "version 2"},
	} {
		path := filepath.Join(dir, tc.name+".json")
		if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Read error = %v, want one naming %s and saying %q", tc.name, err, path, tc.want)
		}
	}
}

// A reader running alongside repeated writes always sees a whole file.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	st := sampleState()
	if err := Write(path, st); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads int
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := Read(path)
			if err == nil && len(got.Instances) == 0 {
				err = os.ErrInvalid
			}
			if err != nil {
				readErr = err
				return
			}
			reads++
		}
	}()
	for i := 0; i < 200; i++ {
		// Vary the size so a torn file could not parse by luck.
		st.Instances = append(st.Instances, Instance{Service: "web", Slot: i, Pid: 1000 + i})
		if i%3 == 0 {
			st.Instances = st.Instances[:2]
		}
		if err := Write(path, st); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("write %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatalf("reader saw a partial file after %d good reads: %v", reads, readErr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}
	t.Logf("%d reads during 200 writes", reads)
}

func TestFingerprint(t *testing.T) {
	a := Fingerprint("web", "./web --port 1")
	if a != Fingerprint("web", "./web --port 1") {
		t.Error("same parts, different fingerprints")
	}
	if len(a) != 64 {
		t.Errorf("fingerprint %q is not sha256 hex", a)
	}
	for _, other := range [][]string{{"web", "./web --port 2"}, {"web./web --port 1"}, {"we", "b./web --port 1"}, {"web\x00./web --port 1"}} {
		if Fingerprint(other...) == a {
			t.Errorf("Fingerprint(%q) collides with Fingerprint(web, ./web --port 1)", other)
		}
	}
	if Fingerprint("a", "") == Fingerprint("a") {
		t.Error("a trailing empty part does not change the fingerprint")
	}
}
