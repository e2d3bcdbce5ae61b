package procstat

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helper processes, as shell commands: each leads a process group of its
// own, killed and reaped at the end of the test.
const (
	spin = "while :; do :; done"
	// workers leads a group of itself and two spinning workers (as Node's
	// cluster or gunicorn), prints their pids and waits.
	workers = "(" + spin + ") & echo $!; (" + spin + ") & echo $!; wait"
)

func startHelper(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return start(t, cmd)
}

func start(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

func TestGroupSumsEveryWorker(t *testing.T) {
	cmd := exec.Command("sh", "-c", workers)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	leader := start(t, cmd).Process.Pid
	r := bufio.NewReader(out)
	pids := []int{leader}
	for range 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a worker's pid: %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(line))
		pids = append(pids, pid)
	}

	began := time.Now()
	first, err := Group(leader)
	if err != nil {
		t.Fatal(err)
	}
	if first.Procs != 3 {
		t.Fatalf("Group(%d) found %d processes, want 3 (%v)", leader, first.Procs, pids)
	}
	var rss int64
	for _, pid := range pids {
		n, err := RSS(pid)
		if err != nil {
			t.Fatal(err)
		}
		rss += n
	}
	// Each RSS moves a little between the reads: within a quarter.
	if first.RSS < rss*3/4 || first.RSS > rss*5/4 {
		t.Errorf("group RSS = %d, want about %d, the sum of its processes'", first.RSS, rss)
	}
	time.Sleep(300 * time.Millisecond)
	then, err := Group(leader)
	if err != nil {
		t.Fatal(err)
	}
	// Two workers spin: up to 2 CPUs' worth (and a tick each), and some of
	// it however loaded the machine.
	tick := time.Second / time.Duration(ClockTicks())
	if d, most := then.CPUSince(first), 2*(time.Since(began)+tick); d <= 0 || d > most {
		t.Errorf("CPU of two spinning workers over %v = %v, want more than 0, at most %v", time.Since(began), d, most)
	}
	if then.CPU < first.CPU {
		t.Errorf("group CPU went down: %v, then %v", first.CPU, then.CPU)
	}
}

func TestGroupsOneScan(t *testing.T) {
	a, b := startHelper(t, "sleep", "60").Process.Pid, startHelper(t, "sleep", "60").Process.Pid
	gone := startHelper(t, "true")
	gone.Wait()
	use, err := Groups(a, b, gone.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(use) != 3 || use[a].Procs != 1 || use[b].Procs != 1 || use[a].RSS <= 0 {
		t.Errorf("Groups = %+v, want one process in each of %d and %d", use, a, b)
	}
	if u := use[gone.Process.Pid]; u.Procs != 0 || u.CPU != 0 || u.RSS != 0 {
		t.Errorf("Groups of a gone group = %+v, want zero", u)
	}
}

func TestCPUSinceCountsEachProcessOnce(t *testing.T) {
	var before, after Usage
	before.add(Stat{Pid: 1, StartTime: 5, UTime: 100}, 0) // goes on
	before.add(Stat{Pid: 2, StartTime: 5, UTime: 900}, 0) // exits
	before.add(Stat{Pid: 3, StartTime: 5, UTime: 500}, 0) // exits; its pid is reused
	after.add(Stat{Pid: 1, StartTime: 5, UTime: 150}, 0)  // +50
	after.add(Stat{Pid: 3, StartTime: 80, UTime: 20}, 0)  // new: +20
	after.add(Stat{Pid: 4, StartTime: 81, STime: 10}, 0)  // new: +10
	want := ticks(80)
	if got := after.CPUSince(before); got != want {
		t.Errorf("CPUSince = %v, want %v", got, want)
	}
	if got := after.CPUSince(Usage{}); got != after.CPU {
		t.Errorf("CPUSince of nothing = %v, want all of CPU, %v", got, after.CPU)
	}
}
