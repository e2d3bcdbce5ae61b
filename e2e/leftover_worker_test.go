package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An instance's worker that ignores SIGTERM and stays in its process group
// when its leader exits (a hung Node cluster worker) is killed when the
// instance is stopped, kill_timeout after SIGTERM: by the daemon that
// started it, and after an upgrade by the one that adopted it, which is
// not its parent. Before, an adopted instance's worker outlived its
// rolling restart.
func TestAWorkerLeftInTheGroupIsStoppedAfterAnUpgradeToo(t *testing.T) {
	e := newEnv(t, 8)
	workers := withWorker(t, e, "trap '' TERM; ", "kill_timeout: 1s\n")
	d := e.startDaemon()
	t.Cleanup(func() { e.tool("stop") }) // the daemon the upgrade starts is not d's child
	d.waitPids(e.proxyAddr(), "web.test", 1, 10*time.Second)

	restart := func(when string, want int) {
		t.Helper()
		if code, out, errOut := e.tool("restart", "web"); code != 0 {
			t.Fatalf("restart %s: exit %d\n%s%s", when, code, out, errOut)
		}
		pids := workerPids(t, workers)
		if len(pids) != want {
			t.Fatalf("%d workers started, want %d", len(pids), want)
		}
		old := pids[want-2]
		deadline := time.Now().Add(5 * time.Second)
		for alive(old) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(old) {
			t.Fatalf("restart %s: the stopped instance's worker pid %d still runs", when, old)
		}
		if !alive(pids[want-1]) {
			t.Fatalf("restart %s: the new instance's worker pid %d is gone", when, pids[want-1])
		}
	}
	restart("by the daemon that started it", 2)
	if out := d.out.String(); !strings.Contains(out, "SIGKILL after kill_timeout 1s to 1 process left in its group") {
		t.Errorf("the log does not say that kill_timeout ran out:\n%s", tail(out, 3000))
	}
	if code, out, errOut := e.tool("upgrade"); code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", code, out, errOut)
	}
	restart("after an upgrade", 3)
	if code, _, err := httpGet(e.proxyAddr(), "web.test", "/"); err != nil || code != 200 {
		t.Errorf("GET after the restarts: %d %v", code, err)
	}
}

// withWorker writes service web.test (extra: more of its settings), one
// instance of the demo run by a script that first starts a worker in the
// instance's process group, `sleep 300` after trap (shell commands, or
// ""), and writes its pid to the file it returns. Cleanup kills the
// workers.
func withWorker(t *testing.T, e *env, trap, extra string) (workers string) {
	t.Helper()
	workers = filepath.Join(e.dir, "workers")
	script := fmt.Sprintf("#!/bin/sh\n(%sexec sleep 300) &\necho $! >> %s\nexec %s \"$@\"\n", trap, workers, e.demo)
	installExecutable(t, filepath.Join(e.dir, "app", "withworker"), []byte(script))
	e.serviceOf("./app/withworker", "web", "web.test", 1, extra)
	t.Cleanup(func() {
		for _, pid := range workerPids(t, workers) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return workers
}

// workerPids reads the pids the instances wrote, in the order they started.
func workerPids(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %q is not a pid", path, f)
		}
		pids = append(pids, pid)
	}
	return pids
}

// A wrapper script that runs its server without exec (as `npm start`
// does) dies of SIGTERM at once; its server, finishing a request, is let
// finish (up to kill_timeout), before an upgrade and after it. Before, the
// server got SIGKILL as soon as the wrapper exited, and its request was
// cut.
func TestAWrappersServerFinishesItsRequestsWhenStopped(t *testing.T) {
	e := newEnv(t, 8)
	script := fmt.Sprintf("#!/bin/sh\n%s \"$@\"\necho wrapper done\n", e.demo)
	installExecutable(t, filepath.Join(e.dir, "app", "wrapper"), []byte(script))
	port := e.serviceOf("./app/wrapper", "web", "web.test", 1, "kill_timeout: 5s\n")
	d := e.startDaemon()
	t.Cleanup(func() { e.tool("stop") }) // the daemon the upgrade starts is not d's child
	// (The server's pid is not the instance's, the wrapper's: not waitPids.)
	if !waitUntil(10*time.Second, func() bool { code, _, _ := httpGet(e.proxyAddr(), "web.test", "/"); return code == 200 }) {
		t.Fatalf("the service does not answer\n%s", tail(d.out.String(), 3000))
	}

	// A request straight to the instance, which the proxy's drain does
	// not see: it is in flight when SIGTERM comes.
	restartDuring := func(when string, port int) {
		t.Helper()
		got := make(chan error, 1)
		go func() {
			code, body, err := httpGet("127.0.0.1:"+strconv.Itoa(port), "web.test", "/slow?ms=1500")
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d: %s", code, body)
			}
			got <- err
		}()
		time.Sleep(300 * time.Millisecond)
		if code, out, errOut := e.tool("restart", "web"); code != 0 {
			t.Fatalf("restart %s: exit %d\n%s%s", when, code, out, errOut)
		}
		if err := <-got; err != nil {
			t.Errorf("restart %s: the request in flight in the wrapper's server: %v", when, err)
		}
	}
	restartDuring("by the daemon that started it", port) // surge: the next instance is on port+1
	if code, out, errOut := e.tool("upgrade"); code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", code, out, errOut)
	}
	restartDuring("after an upgrade", port+1)
}

// An instance that exited while no daemon ran (the daemon was killed,
// then the instance's process) left a worker in its group. The next
// daemon does not adopt the instance, starts its slot afresh, and stops
// what is left of the group: it would hold the instance's port for good.
func TestWhatIsLeftOfAnInstanceThatExitedWithoutADaemonIsStopped(t *testing.T) {
	e := newEnv(t, 8)
	workers := withWorker(t, e, "", "")
	d := e.startDaemon()
	pids := d.waitPids(e.proxyAddr(), "web.test", 1, 10*time.Second)
	syscall.Kill(d.pid(), syscall.SIGKILL)
	<-d.done
	for pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL) // the instance's process; its worker stays
		waitGone(t, pid, 5*time.Second)
	}
	worker := workerPids(t, workers)[0]
	if !alive(worker) {
		t.Fatalf("the worker pid %d is gone with its instance", worker)
	}

	d2 := e.startDaemon()
	d2.waitPids(e.proxyAddr(), "web.test", 1, 10*time.Second)
	if !waitUntil(10*time.Second, func() bool { return !alive(worker) }) {
		t.Fatalf("the worker pid %d of the instance that exited still runs\n%s", worker, tail(d2.out.String(), 3000))
	}
	if out := d2.out.String(); !strings.Contains(out, "what is left of its process group (1 process)") {
		t.Errorf("the log does not say what it stopped:\n%s", tail(out, 3000))
	}
}
