package e2e

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A descriptor the daemon inherited open (a pipe of the shell, harness or
// CI job that started it) does not pass on to its instances: anything
// waiting for that pipe's end would wait for as long as the last instance
// lives.
func TestAnInheritedPipeDoesNotReachTheInstances(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	pipe := "pipe:[" + strconv.FormatUint(st.Ino, 10) + "]"

	e := newEnv(t, 6)
	e.inherit = []*os.File{w} // fd 3 in the daemon, without close-on-exec
	e.service("web", "web.test", 2, "")
	d := e.startDaemon()
	pids := d.waitPids(e.proxyAddr(), "web.test", 2, 15*time.Second)
	if !holds(d.pid(), pipe) {
		t.Fatalf("the daemon does not hold %s: the test passes nothing", pipe)
	}
	for pid := range pids {
		if holds(pid, pipe) {
			t.Errorf("instance pid %d holds the daemon's inherited %s", pid, pipe)
		}
	}
}

// holds reports whether pid has a descriptor open on target (as
// /proc/PID/fd's links name it).
func holds(pid int, target string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if l, err := os.Readlink(dir + e.Name()); err == nil && l == target {
			return true
		}
	}
	return false
}
