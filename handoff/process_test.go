package handoff

import (
	"errors"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

func adopt(t *testing.T, in Instance) *Process {
	t.Helper()
	p, err := Adopt(in, nil)
	if err != nil {
		t.Fatalf("Adopt(%v): %v", in, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// The new daemon is not the instance's parent: it stops it through Signal
// and learns of its exit from the pidfd.
func TestAdoptOrphanSignal(t *testing.T) {
	pid := startOrphan(t)
	in := identify(t, pid)
	p := adopt(t, in)
	if p.Pid() != pid {
		t.Errorf("Pid() = %d, want %d", p.Pid(), pid)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the process runs")
	case <-time.After(50 * time.Millisecond):
	}
	if err := p.Err(); err != nil {
		t.Errorf("Err before Done = %v, want nil", err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal(SIGTERM): %v", err)
	}
	waitDone(t, p, 5*time.Second)
	want := "pid " + itoa(pid) + " exited (status unknown: not our child)"
	if err := p.Err(); err == nil || err.Error() != want {
		t.Errorf("Err = %v, want %q", err, want)
	}
	// Exited (maybe a zombie until init reaps it, maybe its pid reused):
	// neither is an error, and the pidfd never reaches a new process.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal after exit = %v, want nil", err)
	}
	if _, err := Verify(in); err == nil {
		t.Errorf("Verify after exit = nil, want an error")
	}
}

// Signal reaches the whole process group the instance leads.
func TestSignalGroup(t *testing.T) {
	leader := startSleeper(t, "")
	member := startSleeperInGroup(t, "", leader.Process.Pid)
	p := adopt(t, identify(t, leader.Process.Pid))
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p, 5*time.Second)
	exited := make(chan error, 1)
	go func() { exited <- member.Wait() }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("group member still runs after Signal")
	}
}

func TestDoneWhenKilledElsewhere(t *testing.T) {
	pid := startOrphan(t)
	p := adopt(t, identify(t, pid))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p, 5*time.Second)
	if p.Err() == nil {
		t.Error("Err = nil after Done")
	}
}

// An adopted child of ours that exits but is not reaped counts as exited.
func TestDoneOnZombie(t *testing.T) {
	cmd := startSleeper(t, "")
	p := adopt(t, identify(t, cmd.Process.Pid))
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	waitDone(t, p, 5*time.Second)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal to a zombie = %v, want nil", err)
	}
}

func TestCloseIdempotentNoGoroutine(t *testing.T) {
	cmd := startSleeper(t, "")
	in := identify(t, cmd.Process.Pid)
	before := runtime.NumGoroutine()
	p, err := Adopt(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitFor(t, "back to the goroutines before Adopt", 2*time.Second, func() bool {
		return runtime.NumGoroutine() <= before
	})
	select {
	case <-p.Done():
		t.Error("Close closed Done, but the process still runs")
	default:
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Signal after Close = %v, want os.ErrClosed", err)
	}
	if _, err := Verify(in); err != nil {
		t.Errorf("Close affected the process: %v", err)
	}
}

func TestAdoptRejectsOtherProcess(t *testing.T) {
	cmd := startSleeper(t, "")
	in := identify(t, cmd.Process.Pid)
	before := runtime.NumGoroutine()

	reused := in
	reused.StartTime-- // as if the recorded process exited and its pid went to this one
	p, err := Adopt(reused, nil)
	if err == nil {
		p.Close()
		t.Fatal("Adopt of a pid with another start time succeeded")
	}
	if !strings.Contains(err.Error(), "start time") {
		t.Errorf("Adopt error = %v, want a start time mismatch", err)
	}

	cmd.Process.Kill()
	cmd.Wait()
	if _, err := Adopt(in, nil); !errors.Is(err, ErrGone) {
		t.Errorf("Adopt of an exited process = %v, want ErrGone", err)
	}
	waitFor(t, "back to the goroutines before the failed Adopts", 2*time.Second, func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// A watched process costs a goroutine parked in the runtime's poller, not
// an OS thread blocked in poll(2): adopting many adds no thread each.
func TestWatchHoldsNoThread(t *testing.T) {
	const n = 12
	var ins []Instance
	for range n {
		ins = append(ins, identify(t, startSleeper(t, "").Process.Pid))
	}
	threads := pprof.Lookup("threadcreate").Count // threads made so far
	before := threads()
	var ps []*Process
	for _, in := range ins {
		ps = append(ps, adopt(t, in))
	}
	time.Sleep(100 * time.Millisecond) // each watch goroutine waits by now
	if after := threads(); after-before >= n/2 {
		t.Errorf("%d threads after watching %d processes, %d before", after, n, before)
	}
	// Each is still watched: an exit is seen.
	syscall.Kill(ps[n-1].Pid(), syscall.SIGKILL)
	waitDone(t, ps[n-1], 5*time.Second)
}
