package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/pidfd"
)

// startSleepers starts n `sleep 30` children with startChild, killed at
// the test's end.
func startSleepers(t *testing.T, n int) []*childProcess {
	t.Helper()
	var ps []*childProcess
	for range n {
		cmd := exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		p, err := startChild(cmd, nil)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
		t.Cleanup(func() {
			p.Signal(syscall.SIGKILL)
			<-p.Done()
		})
	}
	return ps
}

// An instance costs a goroutine waiting in the poller for its exit, not an
// OS thread blocked in waitid(2) for its whole life: starting many adds no
// thread each. (A blocked thread also kept the runtime's monitor waking
// every 20 µs until it took the thread's processor: package pidfd.)
func TestChildrenHoldNoThreadEach(t *testing.T) {
	const n = 16
	threads := pprof.Lookup("threadcreate").Count // threads made so far
	startSleepers(t, 2)                           // the threads that starting children takes anyway
	time.Sleep(100 * time.Millisecond)
	before := threads()
	ps := startSleepers(t, n)
	time.Sleep(300 * time.Millisecond) // each reaper waits by now
	if after := threads(); after-before >= n/2 {
		t.Errorf("%d threads with %d more children running, %d before", after, n, before)
	}
	// Each is still reaped, with how it ended.
	ps[0].Signal(syscall.SIGKILL)
	select {
	case <-ps[0].Done():
		if err := ps[0].Err(); err == nil || err.Error() != "signal: killed" {
			t.Errorf("Err() = %v, want signal: killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a killed child is not reaped after 5 s")
	}
}

// A child that exits by itself is reaped at once, with its exit status.
func TestChildExitStatus(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := startChild(cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a child that exited is not reaped after 5 s")
	}
	if err := p.Err(); err == nil || err.Error() != "exit status 3" {
		t.Errorf("Err() = %v, want exit status 3", err)
	}
}

// Without a pidfd (a kernel before 5.3), instances are still started,
// watched and stopped, their exits waited for on threads of their own; the
// service's log says so once, whatever the number of starts.
func TestNoPidfdIsSaidOnceAndInstancesStillRun(t *testing.T) {
	openPidfd = func(pid int) (*pidfd.File, error) {
		return nil, fmt.Errorf("pidfd_open of pid %d: %w", pid, syscall.ENOSYS)
	}
	t.Cleanup(func() { openPidfd = pidfd.Open })
	cfg := testConfig(t, 2, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)
	before := h.instances()[0].Pid
	if _, err := h.sup.Restart(context.Background(), "web", "test"); err != nil {
		t.Fatal(err)
	}
	if after := h.instances()[0].Pid; after == before || alive(before) {
		t.Errorf("restart: pid %d before, %d after, the old one alive: %v", before, after, alive(before))
	}
	if err := h.stop(t, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	log := readLog(t, cfg)
	if n := strings.Count(log, "its exit is waited for on a thread of its own"); n != 1 || !strings.Contains(log, "function not implemented") {
		t.Errorf("the log says %d times that no pidfd was had, want once with its cause:\n%s", n, log)
	}
}

// wrapped starts, as an instance, a shell that runs script in a shell of
// its own without exec (a wrapper: `npm start`, a script that does not
// exec its server), and returns it with the wrapper's process group.
func wrapped(t *testing.T, script string) *childProcess {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sh -c '"+script+"'; :") // "; :": no exec of the last command
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := startChild(cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-p.pid, syscall.SIGKILL); <-p.Done() })
	time.Sleep(200 * time.Millisecond) // the inner shell has set its trap
	return p
}

// A wrapper dies of SIGTERM at once; its server, which finishes its work
// for half a second after SIGTERM, is let finish within the grace instead
// of being killed with the wrapper's exit.
func TestTerminateWaitsForTheWholeGroup(t *testing.T) {
	mark := t.TempDir() + "/finished"
	p := wrapped(t, `trap "sleep 0.5; touch `+mark+`; exit 0" TERM; while :; do sleep 0.05; done`)
	start := time.Now()
	if overran, err := terminate(context.Background(), p, 5*time.Second); err != nil || overran != 0 {
		t.Fatalf("terminate: %d overran, %v", overran, err)
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 4*time.Second {
		t.Errorf("terminate took %v, want the server's half second", took)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Error("the wrapper's server was killed before it finished")
	}
	if n, err := p.WaitLeft(closed); n != 0 || err != nil {
		t.Errorf("after terminate: %d left in the group, %v", n, err)
	}
}

// A server that ignores SIGTERM gets SIGKILL after the grace, and
// terminate (kill) returns once it is gone: its port is free then.
func TestTerminateKillsWhatIsLeftAfterTheGrace(t *testing.T) {
	p := wrapped(t, `trap "" TERM; while :; do sleep 0.05; done`)
	start := time.Now()
	if overran, err := terminate(context.Background(), p, 500*time.Millisecond); err != nil || overran != 1 {
		t.Fatalf("terminate: %d overran, want the server; %v", overran, err)
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 4*time.Second {
		t.Errorf("terminate took %v, want the grace of 500ms", took)
	}
	if n, err := p.WaitLeft(closed); n != 0 || err != nil {
		t.Errorf("after terminate: %d left in the group, %v", n, err)
	}
}

// Waiting for a process left in the group costs no CPU: it waits on its
// pidfd, where looking at /proc every few milliseconds took a core for a
// dozen instances stopping at once on a busy machine.
func TestWaitingForTheGroupCostsNoCPU(t *testing.T) {
	p := wrapped(t, `trap "" TERM; exec sleep 30`)
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	if overran, err := terminate(context.Background(), p, 1500*time.Millisecond); err != nil || overran != 1 {
		t.Fatalf("terminate: %d overran, %v", overran, err)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	if cpu > 100*time.Millisecond {
		t.Errorf("waiting 1.5 s for the group took %v of CPU", cpu)
	}
	t.Logf("%v of CPU", cpu)
}
