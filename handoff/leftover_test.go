package handoff

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/nofile"
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
// reused), or a member is of another session (a group made by setsid that
// got the leader's id), nothing is signalled.
func TestSignalLeftLeavesAReusedId(t *testing.T) {
	leader := startSleeper(t, "")
	worker := startSleeperInGroup(t, "", leader.Process.Pid)
	in := identify(t, leader.Process.Pid)
	st, err := readStat(in.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []group{
		{pgid: in.Pid, start: in.StartTime - 1, session: st.Session},
		{pgid: in.Pid, start: in.StartTime, session: st.Session + 1},
	} {
		if err := signalLeft(g, syscall.SIGKILL); err != nil {
			t.Fatalf("%+v: %v", g, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if st, err := readStat(worker.Process.Pid); err != nil || st.Exited() {
		t.Fatalf("a member of a group that is not the leader's was signalled: %v %+v", err, st)
	}
}

// Without a descriptor to read /proc or open a pidfd, Signal says so, and
// asks its room; with room made, it reaches the worker.
func TestSignalLeftWithoutDescriptors(t *testing.T) {
	for _, made := range []bool{false, true} {
		leader := startSleeper(t, "")
		worker := startSleeperInGroup(t, "", leader.Process.Pid)
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		asked := 0
		room := func(at string, err error) bool {
			asked++
			return made && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) == nil
		}
		p, err := Adopt(identify(t, leader.Process.Pid), room)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Kill(leader.Process.Pid, syscall.SIGKILL)
		leader.Wait()
		waitDone(t, p, 5*time.Second)
		// No new descriptor (numbers start at 3), while poll(2) of one
		// pidfd is still allowed (it fails past RLIMIT_NOFILE fds).
		none := syscall.Rlimit{Cur: 1, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &none); err != nil {
			t.Fatal(err)
		}
		err = p.Signal(syscall.SIGKILL)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		p.Close()
		if asked == 0 {
			t.Errorf("room made %v: room not asked", made)
		}
		if !made {
			if !nofile.Exhausted(err) {
				t.Errorf("Signal without descriptors and no room = %v, want EMFILE", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Signal with room made: %v", err)
		}
		if !waitExit(worker, 5*time.Second) {
			t.Error("with room made, the worker still runs")
		}
	}
}

// The leader's group emptied and its id went to an unrelated process that
// made a session and a group of its own, started a child in it and exited
// (as a daemon double-forks): /proc/PGID is gone, and the child is in
// group PGID. Signal leaves it: its session is not the leader's. The pid
// is steered through ns_last_pid (root only; skipped otherwise).
func TestSignalLeftLeavesAGroupThatReusedTheId(t *testing.T) {
	leader := startSleeper(t, "")
	pgid := leader.Process.Pid
	p := adopt(t, identify(t, pgid))
	syscall.Kill(pgid, syscall.SIGKILL)
	waitDone(t, p, 5*time.Second)
	leader.Wait() // the group is empty: its id is free
	stranger := 0
	for try := 0; try < 100 && stranger == 0; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pgid-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid: %v", err)
		}
		cmd := exec.Command("/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		out, err := cmd.Output()
		child, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil || child == 0 {
			t.Fatalf("starting the stranger: %v %q", err, out)
		}
		if cmd.Process.Pid == pgid {
			stranger = child
		} else {
			syscall.Kill(child, syscall.SIGKILL)
		}
	}
	if stranger == 0 {
		t.Skipf("pid %d was not given out again", pgid)
	}
	t.Cleanup(func() { syscall.Kill(stranger, syscall.SIGKILL) })
	if st, err := readStat(stranger); err != nil || st.Pgrp != pgid {
		t.Fatalf("the stranger's child: %v %+v, want it in group %d", err, st, pgid)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if st, err := readStat(stranger); err != nil || st.Exited() {
		t.Errorf("a process of the group that reused the id %d was signalled: %v %+v", pgid, err, st)
	}
}

// Where the session's leader is outside the pid namespace (a container's
// shell, CI), /proc gives every process session 0: a recorded 0 is a
// session all the same. TestLeftoverOf, run again in a pid namespace of
// its own.
func TestLeftoverOfInAPidNamespace(t *testing.T) {
	if os.Getenv("LEFTOVER_IN_NS") != "" {
		t.Skip("in the namespace already")
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", os.Args[0], "-test.run=^TestLeftoverOf$", "-test.v")
	cmd.Env = append(os.Environ(), "LEFTOVER_IN_NS=1")
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "--- ") {
		t.Skipf("no pid namespace here: %v %s", err, out)
	}
	if !strings.Contains(string(out), "session 0") {
		t.Errorf("in the namespace, the instance's session was not 0:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLeftoverOf") {
		t.Fatalf("TestLeftoverOf in a pid namespace of its own: %v\n%s", err, out)
	}
}

// A recorded instance that exited leaves a Leftover with its group's
// members; one that runs, or one recorded without its session (a state
// file of an older version), leaves none.
func TestLeftoverOf(t *testing.T) {
	leader := startSleeper(t, "")
	worker := startSleeperInGroup(t, "", leader.Process.Pid)
	in := identify(t, leader.Process.Pid)
	t.Logf("the instance: pid %d, session %d", in.Pid, *in.Session)
	if lo := LeftoverOf(in); lo != nil {
		t.Fatal("a Leftover of an instance that runs")
	}
	syscall.Kill(leader.Process.Pid, syscall.SIGKILL)
	leader.Wait()
	old := in
	old.Session = nil
	if lo := LeftoverOf(old); lo != nil {
		t.Error("a Leftover of an instance recorded without its session")
	}
	lo := LeftoverOf(in)
	if lo == nil {
		t.Fatal("no Leftover of an instance that exited")
	}
	now := make(chan struct{})
	close(now)
	if n, err := lo.WaitLeft(now); n != 1 || err != nil {
		t.Fatalf("WaitLeft, stopped at once = %d, %v; want the worker", n, err)
	}
	if err := lo.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitExit(worker, 5*time.Second) {
		t.Fatal("the worker still runs after the Leftover's Signal")
	}
	if n, err := lo.WaitLeft(nil); n != 0 || err != nil {
		t.Errorf("WaitLeft after = %d, %v", n, err)
	}
}
