package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPWhileStartingUpgradesOnceReady: a SIGHUP that comes while
// smoothserve starts (its instances not ready yet) is not refused: the
// upgrade happens once it is ready. Before, it was refused ("still
// starting") and only the log said so: a deploy's reload was lost.
func TestSIGHUPWhileStartingUpgradesOnceReady(t *testing.T) {
	e := newEnv(t, 8)
	e.writeMain("")
	e.service("web", "web.test", 2, "args: [\"-port={port}\", \"-start-delay=1500ms\"]\n")
	in := install(e)
	// A file, not a pipe: the new process inherits it, and a pipe's reader
	// would wait for it too.
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	output := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	cmd := exec.Command(in.bin, "--config", in.config)
	cmd.Dir, cmd.Stdout, cmd.Stderr = e.dir, out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	first := cmd.Process.Pid
	// SIGHUP's default is to end the process: send it once smoothserve
	// handles it.
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(output(), "smoothserve started") }) {
		t.Fatalf("smoothserve did not start within 10s:\n%s", output())
	}
	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(output(), "smoothserve is ready") {
		t.Skip("smoothserve was ready before the SIGHUP was sent: nothing of what this test checks happened")
	}
	var next int
	if !waitUntil(20*time.Second, func() bool { next = in.daemonPid(); return next != 0 && next != first }) {
		t.Fatalf("no upgrade 20s after a SIGHUP sent while starting; the pid file names %d:\n%s", next, output())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the first smoothserve exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the first smoothserve still runs 10s after its successor %d was ready:\n%s", next, output())
	}
	if strings.Contains(output(), "still starting") {
		t.Errorf("the SIGHUP was refused:\n%s", output())
	}
	if _, _, err := httpGet(e.proxyAddr(), "web.test", "/"); err != nil {
		t.Errorf("GET after the upgrade: %v", err)
	}
}

// TestSIGHUPDuringAnUpgradeIsOneMore: a second SIGHUP, sent to the pid
// that was asked for the first while that upgrade runs, is one more
// upgrade (the binary may have changed since the first started it), not
// one refused as busy: smoothserve is upgraded twice.
func TestSIGHUPDuringAnUpgradeIsOneMore(t *testing.T) {
	e := newEnv(t, 8)
	admin := e.withAdmin()
	e.service("web", "web.test", 1, "")
	in := installAndStart(e)
	// A service added since the start: the first upgrade's new process
	// starts it, and is ready once it is, 1.5 s later. The second SIGHUP
	// comes meanwhile, whatever the machine's load.
	e.service("slow", "slow.test", 1, "args: [\"-port={port}\", \"-start-delay=1500ms\"]\n")
	first := in.daemonPid()
	logPath := filepath.Join(in.dir, "logs", "smoothserve.log")
	logHas := func(s string) bool { b, _ := os.ReadFile(logPath); return strings.Contains(string(b), s) }
	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(10*time.Second, func() bool { return logHas("upgrading: starting the new smoothserve") }) {
		t.Fatal("the first SIGHUP started no upgrade within 10s")
	}
	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(30*time.Second, func() bool {
		return sum(scrape(t, admin), `^smoothserve_upgrades_total\{result="ok"\}`) == 2
	}) {
		t.Fatalf("upgrades ok: %v 30s after two SIGHUPs, want 2", sum(scrape(t, admin), `^smoothserve_upgrades_total\{result="ok"\}`))
	}
	if !logHas("the signal is passed on to the new one") {
		t.Errorf("the log does not say the second SIGHUP was passed on to the new process")
	}
	if logHas("already under way") {
		t.Errorf("the second SIGHUP was refused as busy")
	}
	last := in.daemonPid()
	if last == first || !alive(last) {
		t.Errorf("the pid file names %d (alive %v), the first daemon was %d", last, alive(last), first)
	}
	if !waitUntil(10*time.Second, func() bool { return !alive(first) }) {
		t.Errorf("the first smoothserve (pid %d) still runs", first)
	}
	if v := sum(scrape(t, admin), `^smoothserve_upgrades_total\{result="failed"\}`); v != 0 {
		t.Errorf("upgrades failed: %v, want 0", v)
	}
	if _, _, err := httpGet(e.proxyAddr(), "slow.test", "/"); err != nil {
		t.Errorf("GET of the service added: %v", err)
	}
}

// TestSIGHUPDuringARolloutUpgradesAfterIt: a SIGHUP that comes while a
// service rolls (an upgrade is refused then: the supervisor cannot hand a
// rollout over) upgrades once the rollout has ended. Before, it was
// refused ("cannot upgrade now: a rollout … is under way") and lost.
func TestSIGHUPDuringARolloutUpgradesAfterIt(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 2, "args: [\"-port={port}\", \"-start-delay=700ms\"]\n")
	in := installAndStart(e)
	first := in.daemonPid()
	logPath := filepath.Join(in.dir, "logs", "smoothserve.log")
	log := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	restarted := make(chan string, 1)
	go func() {
		code, out, errOut := in.run("restart", "web")
		if code != 0 {
			restarted <- "restart: " + out + errOut
			return
		}
		restarted <- ""
	}()
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(log(), "rolling restart of web") }) {
		t.Fatal("the rollout did not start within 10s")
	}
	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if msg := <-restarted; msg != "" {
		t.Fatal(msg)
	}
	if strings.Contains(log(), "rolling restart of web done") && !strings.Contains(log(), "waiting for the rollout under way") {
		t.Skip("the rollout ended before the SIGHUP was handled: nothing of what this test checks happened")
	}
	var next int
	if !waitUntil(20*time.Second, func() bool { next = in.daemonPid(); return next != 0 && next != first }) {
		t.Fatalf("no upgrade 20s after a SIGHUP sent during a rollout; the pid file names %d", next)
	}
	l := log()
	if strings.Contains(l, "cannot upgrade now") {
		t.Errorf("the SIGHUP's upgrade was refused for the rollout")
	}
	if i, j := strings.Index(l, "rolling restart of web done"), strings.Index(l, "upgrading: starting the new smoothserve"); i < 0 || j < i {
		t.Errorf("the upgrade did not start after the rollout ended (done at %d, upgrade at %d in the log)", i, j)
	}
}
