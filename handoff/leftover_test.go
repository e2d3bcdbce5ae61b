package handoff

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// waitExit reports whether cmd, a child of the test, exits within d.
func waitExit(cmd *exec.Cmd, d time.Duration) bool {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
		return true
	case <-time.After(d):
		return false
	}
}

// A worker left in the group of an adopted instance whose leader exited
// (a Node cluster worker hung after its primary) is reached by Signal,
// whether the leader has been reaped or is a zombie still.
func TestSignalReachesWhatIsLeftOfTheGroup(t *testing.T) {
	for _, reaped := range []bool{true, false} {
		name := "leader reaped"
		if !reaped {
			name = "leader a zombie"
		}
		t.Run(name, func(t *testing.T) {
			leader := startSleeper(t, "")
			worker := startSleeperInGroup(t, "", leader.Process.Pid)
			p := adopt(t, identify(t, leader.Process.Pid))
			if err := syscall.Kill(leader.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitDone(t, p, 5*time.Second)
			if reaped {
				leader.Wait()
			}
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("Signal after the leader exited: %v", err)
			}
			if !waitExit(worker, 5*time.Second) {
				t.Fatal("the worker left in the group still runs after Signal")
			}
		})
	}
}

// When the group's id names a process that is not the leader (its pid was
// reused), nothing is signalled.
func TestSignalLeftInGroupLeavesAReusedId(t *testing.T) {
	leader := startSleeper(t, "")
	worker := startSleeperInGroup(t, "", leader.Process.Pid)
	in := identify(t, leader.Process.Pid)
	if err := signalLeftInGroup(in.Pid, in.StartTime-1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if st, err := readStat(worker.Process.Pid); err != nil || st.Exited() {
		t.Fatalf("a member of a group whose id another process holds was signalled: %v %+v", err, st)
	}
}
