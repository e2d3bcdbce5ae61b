package pidfd

import (
	"errors"
	"os/exec"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"
)

// sleeper starts `sleep 30`, killed and reaped at the test's end.
func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func open(t *testing.T, pid int) *File {
	t.Helper()
	f, err := Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitAsync runs f.Wait on a goroutine; its result comes on the channel.
func waitAsync(f *File) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f.Wait() }()
	return ch
}

func TestWaitReturnsWhenTheProcessExits(t *testing.T) {
	cmd := sleeper(t)
	f := open(t, cmd.Process.Pid)
	if f.Pid() != cmd.Process.Pid {
		t.Errorf("Pid() = %d, want %d", f.Pid(), cmd.Process.Pid)
	}
	done := waitAsync(f)
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v while pid %d runs", err, cmd.Process.Pid)
	case <-time.After(200 * time.Millisecond):
	}
	// Killed and not reaped: a zombie has exited.
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Wait = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pid killed 5 s ago, Wait still waits")
	}
	// The child is still ours to reap, and says how it ended.
	if err := cmd.Wait(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("cmd.Wait after Wait = %v, want signal: killed", err)
	}
}

func TestWaitOnAnExitedProcessReturnsAtOnce(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	f := open(t, cmd.Process.Pid) // before the reap: the zombie's
	select {
	case err := <-waitAsync(f):
		if err != nil {
			t.Errorf("Wait = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait on a process that exited still waits after 5 s")
	}
}

func TestCloseEndsWait(t *testing.T) {
	f := open(t, sleeper(t).Process.Pid)
	done := waitAsync(f)
	time.Sleep(100 * time.Millisecond) // parked in the poller
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Wait after Close = nil: the process has not exited")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end Wait")
	}
	if err := f.Control(func(int) { t.Error("Control ran after Close") }); err == nil {
		t.Error("Control after Close = nil")
	}
}

func TestOpenOfNoProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	// Reaped: the pid names nothing (until reused, which a test run
	// does not reach).
	_, err := Open(cmd.Process.Pid)
	if !errors.Is(err, ErrGone) {
		t.Errorf("Open of a reaped pid = %v, want ErrGone", err)
	}
}

// Waiting costs a goroutine parked in the poller, not an OS thread blocked
// in a system call: many waits add no thread each.
func TestWaitsHoldNoThread(t *testing.T) {
	const n = 16
	var fs []*File
	for range n {
		fs = append(fs, open(t, sleeper(t).Process.Pid))
	}
	threads := pprof.Lookup("threadcreate").Count // threads made so far
	before := threads()
	var dones []<-chan error
	for _, f := range fs {
		dones = append(dones, waitAsync(f))
	}
	time.Sleep(200 * time.Millisecond) // each Wait waits by now
	if after := threads(); after-before >= n/2 {
		t.Errorf("%d threads with %d Waits under way, %d before", after, n, before)
	}
	syscall.Kill(fs[0].Pid(), syscall.SIGKILL)
	select {
	case <-dones[0]:
	case <-time.After(5 * time.Second):
		t.Fatal("a killed process's Wait still waits")
	}
}
