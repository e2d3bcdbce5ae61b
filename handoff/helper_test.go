package handoff

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a helper process instead of
// running tests: "sleep" sleeps 30 s; "spawn" starts a sleeping grandchild
// in its own process group, prints its pid and exits without waiting, so
// the grandchild is reparented and is not the test's child.
const helperEnv = "HANDOFF_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "sleep":
		time.Sleep(30 * time.Second)
		os.Exit(0)
	case "spawn":
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"=sleep")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// startSleeper starts exe (the test binary if empty) as a sleeping helper
// child in its own process group. Cleanup kills the group and reaps it;
// a test that reaps it itself leaves Cleanup nothing to do.
func startSleeper(t *testing.T, exe string) *exec.Cmd {
	t.Helper()
	return startSleeperInGroup(t, exe, 0)
}

// startSleeperInGroup is startSleeper joining process group pgid, or
// leading a group of its own if pgid is 0.
func startSleeperInGroup(t *testing.T, exe string, pgid int) *exec.Cmd {
	t.Helper()
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting helper %s: %v", exe, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			syscall.Kill(pid, syscall.SIGKILL)
			if pgid == 0 {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
			cmd.Wait()
		}
	})
	return cmd
}

// startOrphan starts a sleeping helper that is not our child (its parent
// exited), in its own process group, and returns its pid. Cleanup kills it.
func startOrphan(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	// Under -race a process sleeps 1 s when it exits (atexit_sleep_ms).
	cmd.Env = append(os.Environ(), helperEnv+"=spawn", "GORACE=atexit_sleep_ms=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting spawn helper: %v", err)
	}
	line, rerr := bufio.NewReader(out).ReadString('\n')
	if err := cmd.Wait(); err != nil {
		t.Fatalf("spawn helper: %v", err)
	}
	if rerr != nil {
		t.Fatalf("reading grandchild pid: %v", rerr)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("grandchild pid %q: %v", line, err)
	}
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	// The spawn helper has been reaped, so the grandchild was reparented
	// already; if this process were a subreaper it would be ours.
	st, err := readStat(pid)
	if err != nil {
		t.Fatalf("grandchild: %v", err)
	}
	if st.Ppid == os.Getpid() {
		t.Fatalf("grandchild %d is our child: the test runs as a subreaper", pid)
	}
	return pid
}

// identify returns the Instance recording live process pid.
func identify(t *testing.T, pid int) Instance {
	t.Helper()
	id, err := Identify(pid)
	if err != nil {
		t.Fatalf("Identify(%d): %v", pid, err)
	}
	return Instance{Service: "web", Slot: 1, Port: 8081, Pid: pid, StartTime: id.StartTime, Session: &id.Session, Exe: id.Exe, State: "ready"}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still not %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits, bounded, for p to report its exit.
func waitDone(t *testing.T, p *Process, d time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(d):
		t.Fatalf("pid %d: Done not closed after %v", p.Pid(), d)
	}
}
