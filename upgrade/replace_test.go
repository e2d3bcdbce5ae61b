package upgrade

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv names, in the environment of the test binary started again by
// an upgrade, the pid file the new process writes when it is ready.
const childEnv = "UPGRADE_TEST_CHILD_PIDFILE"

// TestMain is also the new process of TestUpgradeOnceThenReplaced: started
// again by the upgrade, the test binary becomes ready, and exits once the
// test releases it (exiting at once could race tableflip's reading of the
// readiness in the parent).
func TestMain(m *testing.M) {
	if pidFile := os.Getenv(childEnv); pidFile != "" {
		u, err := New(pidFile, time.Minute)
		if err == nil {
			// What WarmForTakeOver did, for the test to read.
			n, werr := u.WarmForTakeOver()
			err = os.WriteFile(warmFile(pidFile), fmt.Appendf(nil, "%d %v", n, werr), 0o644)
		}
		if err == nil {
			err = u.Ready()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "upgrade test child:", err)
			os.Exit(1)
		}
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			_, released := os.Stat(releaseFile(pidFile))
			_, gone := os.Stat(filepath.Dir(pidFile)) // the test's folder, removed after it
			if released == nil || gone != nil {
				break
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// releaseFile is the file whose creation lets the new process exit.
func releaseFile(pidFile string) string { return pidFile + ".release" }

// warmFile is where the new process says what WarmForTakeOver returned.
func warmFile(pidFile string) string { return pidFile + ".warm" }

// upgraderMade is set once this process has made its Upgrader.
var upgraderMade bool

// One process of the test binary replaces this one: a second upgrade asked
// while the first runs is refused as busy, and one asked after it
// succeeded as replaced, without starting anything.
func TestUpgradeOnceThenReplaced(t *testing.T) {
	if upgraderMade {
		t.Skip("tableflip allows one Upgrader a process: run with -count=1")
	}
	upgraderMade = true
	pidFile := filepath.Join(t.TempDir(), "smoothserve.pid")
	u, err := New(pidFile, time.Minute) // the new process starts in the idle class
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	if err := u.Ready(); err != nil { // an upgrade starts from a ready process
		t.Fatal(err)
	}
	// Heap in use here that the new process does not have: it makes as
	// much resident before it is ready (WarmForTakeOver), within its
	// heap's mapping.
	held := make([]byte, 8<<20)
	for i := 0; i < len(held); i += 4096 {
		held[i] = 1
	}
	defer runtime.KeepAlive(held)
	t.Setenv(childEnv, pidFile)
	t.Cleanup(func() { os.WriteFile(releaseFile(pidFile), nil, 0o644) })
	var during error
	var pid int
	aborted := false
	for range 1000 {
		aborted = false
		pid, err = u.Upgrade(func() error {
			_, during = u.Upgrade(func() error { t.Error("a second upgrade ran its prepare"); return nil }, func() {})
			return u.PassHeapInUse(true)
		}, func() { aborted = true })
		// tableflip learns of Ready on its own goroutine: an upgrade asked
		// at once may find it not ready yet.
		if err == nil || !strings.Contains(err.Error(), "not ready yet") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	if aborted {
		t.Error("abort called after a successful upgrade")
	}
	if !errors.Is(during, ErrBusy) {
		t.Errorf("Upgrade during an upgrade: %v, want ErrBusy", during)
	}
	if pid <= 0 || pid == os.Getpid() {
		t.Errorf("Upgrade returned pid %d (this process is %d)", pid, os.Getpid())
	}
	b, err := os.ReadFile(warmFile(pidFile))
	var warmed int64
	fmt.Sscanf(string(b), "%d", &warmed)
	if err != nil || warmed <= 0 && canPopulate(t) {
		t.Errorf("the new process's WarmForTakeOver = %q, %v; want bytes made resident", b, err)
	}
	// At once, before tableflip closes Exit: replaced already, nothing
	// prepared (a SIGHUP's upgrade asked then must not start a process).
	prepared := false
	if _, err := u.Upgrade(func() error { prepared = true; return nil }, func() {}); !errors.Is(err, ErrReplaced) || prepared {
		t.Errorf("Upgrade right after one succeeded: %v (prepare ran: %v), want ErrReplaced", err, prepared)
	}
	select {
	case <-u.Exit():
	case <-time.After(5 * time.Second):
		t.Fatal("Exit not closed after the upgrade succeeded")
	}
	prepared = false
	if _, err := u.Upgrade(func() error { prepared = true; return nil }, func() {}); !errors.Is(err, ErrReplaced) {
		t.Errorf("Upgrade once replaced: %v, want ErrReplaced", err)
	}
	if prepared {
		t.Error("Upgrade once replaced ran its prepare")
	}
}

// canPopulate reports whether this kernel makes memory resident ahead
// (MADV_POPULATE_WRITE, Linux 5.14).
func canPopulate(t *testing.T) bool {
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	return unix.Madvise(b, unix.MADV_POPULATE_WRITE) == nil
}
