package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
	"smoothserve/internal/priority"
	"smoothserve/internal/proctree"
)

// installed is an env laid out as the seed's bin folder: smoothserve and
// smoothtool side by side in dir/bin, so that an upgrade re-runs
// dir/bin/smoothserve and a test can move a new binary there.
type installed struct {
	*env
	bin  string // dir/bin/smoothserve
	tool string // dir/bin/smoothtool
}

func install(e *env) *installed {
	e.t.Helper()
	in := &installed{env: e, bin: filepath.Join(e.dir, "bin", "smoothserve"), tool: filepath.Join(e.dir, "bin", "smoothtool")}
	copyFile(e.t, bin.smoothserve, in.bin)
	copyFile(e.t, bin.smoothtool, in.tool)
	e.t.Cleanup(func() {
		if e.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(e.dir, "logs", "smoothserve.log"))
			e.t.Logf("smoothserve.log:\n%s", tail(string(b), 6000))
		}
		killUnder(e.dir)
	})
	return in
}

// allPids lists the processes in /proc.
func allPids() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		if pid, err := strconv.Atoi(ent.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killUnder SIGKILLs every process of one test, found by pid: those whose
// executable lies under dir (its daemons and instances), or one of whose
// arguments does (an instance run by an interpreter: node server.js). A
// daemon may start an instance while the list is read (a roll under way):
// it goes over the list again until a pass finds none.
func killUnder(dir string) {
	for range 20 {
		found := false
		for _, pid := range allPids() {
			if runsFrom(pid, dir) {
				syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runsFrom reports whether process pid's executable, or one of its
// arguments, is a path under dir.
func runsFrom(pid int, dir string) bool {
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); strings.HasPrefix(exe, dir+"/") {
		return true
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		if strings.HasPrefix(arg, dir+"/") {
			return true
		}
	}
	return false
}

// run runs the installed smoothtool.
func (in *installed) run(args ...string) (int, string, string) {
	return runTool(in.t, in.tool, in.dir, append(args, "-config", in.config)...)
}

func netListen(port int) (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
}

func (in *installed) daemonPid() int {
	b, _ := os.ReadFile(filepath.Join(in.dir, "smoothserve.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// instancesNow maps port → pid of the ready instances, from status.
// sighup upgrades the daemon by SIGHUP, as systemd's reload does, and
// returns the new daemon's pid once the pid file names it.
func (in *installed) sighup() (int, error) {
	old := in.daemonPid()
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		return 0, fmt.Errorf("SIGHUP to the daemon, pid %d: %w", old, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if pid := in.daemonPid(); pid != old && pid != 0 {
			return pid, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("SIGHUP: the pid file still names %d after 15s", old)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (in *installed) instancesNow() map[int]int {
	in.t.Helper()
	st := in.statusJSON()
	m := map[int]int{}
	for _, insts := range instancesOf(in.t, st) {
		for _, i := range insts {
			if i["state"] == "ready" {
				m[int(i["port"].(float64))] = int(i["pid"].(float64))
			}
		}
	}
	return m
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still running after %v", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startInstalled(t *testing.T, mainExtra, svcExtra string) *installed {
	t.Helper()
	return startInstalledWith(t, func(*env) string { return mainExtra }, svcExtra)
}

// startInstalledWithAdmin is startInstalledWith an admin listener (for the
// metrics), whose address it returns too.
func startInstalledWithAdmin(t *testing.T, svcExtra ...string) (*installed, string) {
	t.Helper()
	var admin string
	in := startInstalledWith(t, func(e *env) string {
		admin = "127.0.0.1:" + strconv.Itoa(e.ports.next())
		return "AdminAddr: " + admin + "\n"
	}, svcExtra...)
	return in, admin
}

// startInstalledWith is startInstalled with smoothserve.yaml's extra lines
// made from the env (its ports).
func startInstalledWith(t *testing.T, mainExtra func(*env) string, svcExtra ...string) *installed {
	t.Helper()
	e := newEnv(t, 8)
	e.writeMain(mainExtra(e))
	e.service("web", "web.test", 3, strings.Join(svcExtra, ""))
	return installAndStart(e)
}

// installAndStart installs e's binaries and starts smoothserve from them
// with smoothtool start, which returns once it is ready.
func installAndStart(e *env) *installed {
	e.t.Helper()
	in := install(e)
	if code, out, errOut := in.run("start"); code != 0 {
		e.t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	return in
}

func TestTwentyUpgradesUnderLoadLoseNothing(t *testing.T) {
	in := startInstalled(t, "", closesIdleConns)
	instances := in.instancesNow()
	if len(instances) != 3 {
		t.Fatalf("instances: %v", instances)
	}
	load := mixedLoad(in.env, "web.test")
	paused := pausedLoad(in.env, "web.test")
	time.Sleep(300 * time.Millisecond)
	arrow := regexp.MustCompile(`pid (\d+) → (\d+)`)
	var slowestUpgrade time.Duration // from the signal or the command to the new daemon in charge
	for i := 1; i <= 20; i++ {
		old := in.daemonPid()
		copyFile(t, bin.smoothserve, in.bin) // a new binary moved into place
		var newPid int
		began := time.Now()
		if i%2 == 1 {
			var err error
			if newPid, err = in.sighup(); err != nil {
				load.Stop()
				t.Fatalf("upgrade %d: %v", i, err)
			}
		} else {
			code, out, errOut := in.run("upgrade")
			m := arrow.FindStringSubmatch(out)
			if code != 0 || m == nil {
				load.Stop()
				t.Fatalf("upgrade %d: smoothtool upgrade: exit %d\n%s%s", i, code, out, errOut)
			}
			newPid, _ = strconv.Atoi(m[2])
			if p, _ := strconv.Atoi(m[1]); p != old || newPid != in.daemonPid() {
				t.Errorf("upgrade %d: smoothtool says %s, pid file %d, old daemon %d", i, m[0], in.daemonPid(), old)
			}
		}
		slowestUpgrade = max(slowestUpgrade, time.Since(began))
		// The old daemon drains its requests (300 ms at most here) and
		// exits: it must not hold connections until some timeout.
		waitGone(t, old, 10*time.Second)
		if got := in.instancesNow(); !maps.Equal(got, instances) {
			t.Fatalf("upgrade %d: instances %v, want the same %v", i, got, instances)
		}
	}
	res := load.Stop()
	pres := paused.Stop()
	t.Logf("20 upgrades (the slowest %v): %v, slowest %v; after pauses: %v", slowestUpgrade, res, res.MaxLatency, pres)
	if err := res.Err(); err != nil {
		t.Errorf("requests failed across 20 upgrades: %v", err)
	}
	if err := pres.Err(); err != nil {
		t.Errorf("requests sent after a pause failed across 20 upgrades: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}
	// A request held by a draining daemon is not lost, but it is not
	// served either: none may wait for one of the daemon's timeouts (5 s
	// and more). The 300 ms the slow ones ask for take over a second on a
	// loaded machine (1.6 s seen), which may also be slow to bring up a
	// new daemon: at most 3 s, or a second beyond the slowest upgrade.
	if limit := max(3*time.Second, slowestUpgrade+time.Second); res.MaxLatency > limit {
		t.Errorf("the slowest request across the upgrades took %v, over %v", res.MaxLatency, limit)
	}
	// Each daemon passed the clients' connections on to the next: none
	// was closed, so none had to be opened again.
	if n := res.Reconnects + pres.Reconnects; n != 0 {
		t.Errorf("the clients reconnected %d times across the upgrades; want 0 (connections passed on)", n)
	}

	// The adopted instances roll and recover like any others. No Stream:
	// a kill -9 cuts any response the instance was streaming, which no
	// proxy can save; nor a POST it was answering (it may have acted on
	// it, so it is not sent again): the POSTs go through the restart, and
	// stop before the kill.
	load = loadOf(in.env, "web.test", loadclient.Get, loadclient.Get, loadclient.Slow, loadclient.Post)
	time.Sleep(200 * time.Millisecond)
	if code, out, errOut := in.run("restart", "web"); code != 0 {
		load.Stop()
		t.Fatalf("restart after the upgrades: exit %d\n%s%s", code, out, errOut)
	}
	res = load.Stop()
	t.Logf("restart after the upgrades: %v", res)
	if err := res.Err(); err != nil {
		t.Errorf("requests failed in the restart after upgrades: %v", err)
	}
	load = loadOf(in.env, "web.test", loadclient.Get, loadclient.Get, loadclient.Slow)
	time.Sleep(200 * time.Millisecond)
	after := in.instancesNow()
	for _, pid := range instances {
		if alive(pid) {
			t.Errorf("adopted pid %d still runs after the restart", pid)
		}
	}
	var victim, port int
	for port, victim = range after {
		break
	}
	syscall.Kill(victim, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for p := in.instancesNow()[port]; p == 0 || p == victim; p = in.instancesNow()[port] {
		if time.Now().After(deadline) {
			t.Fatalf("kill -9 of pid %d on :%d: not replaced within 10s", victim, port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	res = load.Stop()
	t.Logf("kill -9 after the upgrades: %v", res)
	if err := res.Err(); err != nil {
		t.Errorf("GETs failed across the kill -9 after upgrades: %v", err)
	}
}

func TestOutputOfInstancesIsContinuousAcrossUpgrades(t *testing.T) {
	in := startInstalled(t, "", "args: [\"-port={port}\", \"-log-every=5ms\"]\n")
	instances := in.instancesNow()
	for i := 0; i < 4; i++ {
		old := in.daemonPid()
		if code, out, errOut := in.run("upgrade"); code != 0 {
			t.Fatalf("upgrade %d: exit %d\n%s%s", i, code, out, errOut)
		}
		waitGone(t, old, 30*time.Second)
	}
	time.Sleep(200 * time.Millisecond)
	if got := in.instancesNow(); !maps.Equal(got, instances) {
		t.Fatalf("instances %v after upgrades, want %v (none killed, by SIGPIPE or else)", got, instances)
	}
	f, err := os.Open(filepath.Join(in.dir, "logs", "web.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	last := map[int]int{}
	line := regexp.MustCompile(`^demo pid=(\d+) line=(\d+)$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		if n != last[pid]+1 {
			t.Errorf("pid %d: line %d follows line %d: output lost", pid, n, last[pid])
		}
		last[pid] = n
	}
	for _, pid := range instances {
		if last[pid] < 50 {
			t.Errorf("pid %d wrote %d lines, want a steady stream", pid, last[pid])
		}
	}
	t.Logf("lines per instance: %v", last)
}

func TestBrokenUpgradeKeepsTheOldDaemonServing(t *testing.T) {
	in := startInstalled(t, "UpgradeTimeout: 3\n", "")
	good := in.bin + ".good"
	copyFile(t, in.bin, good)
	instances := in.instancesNow()
	daemon := in.daemonPid()
	load := mixedLoad(in.env, "web.test")
	time.Sleep(300 * time.Millisecond)

	// What the new process said, smoothtool shows from smoothserve.log.
	for _, broken := range []struct {
		name, script string
		want         []string
	}{
		{"exits at once", "#!/bin/sh\necho 'smoothserve: broken build' >&2\nexit 1\n",
			[]string{"exited", "\nthe end of smoothserve's log:\n", "\n  smoothserve: broken build\n"}},
		{"never ready", "#!/bin/sh\nexec sleep 60\n", []string{"timed out"}},
	} {
		installExecutable(t, in.bin, []byte(broken.script))
		type result struct {
			code     int
			out, err string
		}
		second := make(chan result, 1)
		if broken.name == "never ready" {
			// A second upgrade asked while this one waits is refused. It
			// is asked once the daemon runs the broken binary (the first
			// is under way then, however loaded the machine), within the
			// 3 s the daemon waits for it.
			go func() {
				waitUntil(10*time.Second, func() bool { return upgradeChild(daemon, in.demo) })
				code, out, errOut := in.run("upgrade")
				second <- result{code, out, errOut}
			}()
		}
		start := time.Now()
		code, out, errOut := in.run("upgrade")
		t.Logf("%s: smoothtool upgrade after %v: exit %d: %s%s", broken.name, time.Since(start).Round(time.Millisecond), code, out, strings.TrimSpace(errOut))
		if code != 1 || slices.ContainsFunc(broken.want, func(w string) bool { return !strings.Contains(errOut, w) }) {
			t.Errorf("%s: smoothtool upgrade exit %d, stderr %q; want 1 and %q", broken.name, code, errOut, broken.want)
		}
		if broken.name == "never ready" {
			r := <-second
			if r.code != 1 || !strings.Contains(r.err, "already under way") {
				t.Errorf("a second upgrade during one: exit %d, %q; want 1 and 'already under way'", r.code, r.err)
			}
		}
		if got := in.daemonPid(); got != daemon || !alive(daemon) {
			t.Errorf("%s: pid file %d, old daemon %d alive=%v; want it unchanged and serving", broken.name, got, daemon, alive(daemon))
		}
		if got := in.instancesNow(); !maps.Equal(got, instances) {
			t.Errorf("%s: instances %v, want %v", broken.name, got, instances)
		}
	}
	// Repaired: the next upgrade goes through.
	if err := os.Rename(good, in.bin); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := in.run("upgrade"); code != 0 {
		t.Errorf("upgrade with the good binary back: exit %d\n%s%s", code, out, errOut)
	}
	time.Sleep(300 * time.Millisecond)
	res := load.Stop()
	t.Logf("load: %v", res)
	if err := res.Err(); err != nil {
		t.Errorf("requests failed around broken upgrades: %v", err)
	}
}

// upgradeChild reports whether the daemon runs a child that is not one of
// its instances (whose executable is demo): the new smoothserve of an
// upgrade under way.
func upgradeChild(daemon int, demo string) bool {
	for _, pid := range proctree.Children(daemon) {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe != demo {
			return true
		}
	}
	return false
}

func TestKill9OfTheDaemonThenStartAdoptsTheInstances(t *testing.T) {
	in := startInstalled(t, "", "")
	instances := in.instancesNow()
	daemon := in.daemonPid()
	syscall.Kill(daemon, syscall.SIGKILL)
	waitGone(t, daemon, 5*time.Second)
	for _, pid := range instances {
		if !alive(pid) {
			t.Fatalf("instance pid %d died with the daemon", pid)
		}
	}
	code, out, errOut := in.run("start")
	if code != 0 {
		t.Fatalf("smoothtool start after kill -9: exit %d\n%s%s", code, out, errOut)
	}
	if got := in.instancesNow(); !maps.Equal(got, instances) {
		t.Errorf("after kill -9 and start: instances %v, want the same %v", got, instances)
	}
	// Nothing was started twice.
	demos := 0
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		if pid, err := strconv.Atoi(ent.Name()); err == nil && alive(pid) {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == in.demo {
				demos++
			}
		}
	}
	if demos != 3 {
		t.Errorf("%d demo processes run, want 3", demos)
	}
	if code, body, err := httpGet(in.proxyAddr(), "web.test", "/"); err != nil || code != 200 {
		t.Errorf("GET after adoption: %d %v %q", code, err, body)
	}
}

// A port another process listens on is reported at once, by smoothtool
// start of the daemon and of the service, not after start_timeout; once
// the port is free, start tries the slot at once, not after its backoff.
func TestPortHeldByAnUnknownProcessIsAClearError(t *testing.T) {
	e := newEnv(t, 8)
	start := e.service("web", "web.test", 1, "start_timeout: 30\n")
	ln, err := netListen(start)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	in := install(e)
	want := fmt.Sprintf("port %d is in use by another process", start)
	for _, args := range [][]string{{"start"}, {"start", "web"}} {
		began := time.Now()
		code, out, errOut := in.run(args...)
		took := time.Since(began)
		if code == 0 {
			t.Errorf("smoothtool %v with the instance port held: exit 0\n%s", args, out)
		}
		if !strings.Contains(out+errOut, want) {
			t.Errorf("smoothtool %v does not say %q:\n%s%s", args, want, out, errOut)
		}
		if took > 10*time.Second {
			t.Errorf("smoothtool %v took %v to say so; the start_timeout is 30 s, and waiting does not free a port", args, took.Round(time.Millisecond))
		}
	}
	// Five more failed tries: the slot now waits 3.2 s before the next.
	// start does not wait for it.
	restarts := func() int {
		return int(instancesOf(t, in.statusJSON())["web"][0]["restarts"].(float64))
	}
	deadline := time.Now().Add(15 * time.Second)
	for r0 := restarts(); restarts() < r0+5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slot was not tried 5 more times in 15 s (%d restarts)", restarts())
		}
	}
	ln.Close()
	began := time.Now()
	if code, out, errOut := in.run("start", "web"); code != 0 {
		t.Fatalf("smoothtool start web once the port is free: exit %d\n%s%s", code, out, errOut)
	}
	if took := time.Since(began); took > 1500*time.Millisecond {
		t.Errorf("smoothtool start web took %v: it waited for the backoff instead of starting the slot at once", took.Round(time.Millisecond))
	}
	if code, body, err := httpGet(in.proxyAddr(), "web.test", "/"); err != nil || code != 200 {
		t.Errorf("GET once the port is free: %d %v %q", code, err, body)
	}
}

func TestKeepAliveConnectionGoesOnAcrossUpgrades(t *testing.T) {
	in := startInstalled(t, "", "")
	c, err := net.Dial("tcp", in.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func(path string) (string, bool, time.Duration) {
		start := time.Now()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: web.test\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request on the kept-alive connection: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body))), resp.Close, time.Since(start)
	}
	// Round robin: a connection to each of the 3 instances, idle between
	// requests.
	for range 3 {
		if got, closed, _ := get("/"); !strings.HasPrefix(got, "200 hello") || closed {
			t.Fatalf("first requests: %s close=%v", got, closed)
		}
	}
	var ports []int
	for _, i := range instancesOf(t, in.statusJSON())["web"] {
		ports = append(ports, int(i["port"].(float64)))
	}
	before := establishedTo(t, ports)
	if len(before) != 3 {
		t.Fatalf("the instances hold %d connections after a request to each: %v; want 3", len(before), before)
	}
	for i := 1; i <= 3; i++ {
		old := in.daemonPid()
		if code, out, errOut := in.run("upgrade"); code != 0 {
			t.Fatalf("upgrade %d: exit %d\n%s%s", i, code, out, errOut)
		}
		// The idle connection went over to the new daemon: the old one
		// exits at once, and the connection is answered and kept.
		waitGone(t, old, 5*time.Second)
		got, closed, took := get("/")
		if !strings.HasPrefix(got, "200 hello") || closed || took > time.Second {
			t.Errorf("upgrade %d: request on the connection opened before it: %s close=%v in %v; want 200, kept open, at once", i, got, closed, took)
		}
	}
	// The idle connections to the instances went over too: the instances
	// saw none close and none open across the 3 upgrades.
	if after := establishedTo(t, ports); !maps.Equal(after, before) {
		t.Errorf("connections to the instances after 3 upgrades: %v; before: %v; want the same ones", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
	}
	// A request in progress during an upgrade finishes on the old daemon,
	// and its connection then goes over too.
	done := make(chan string, 1)
	go func() {
		got, closed, _ := get("/slow?ms=500")
		done <- fmt.Sprintf("%s close=%v", got, closed)
	}()
	time.Sleep(100 * time.Millisecond)
	if code, out, errOut := in.run("upgrade"); code != 0 {
		t.Fatalf("upgrade during a slow request: exit %d\n%s%s", code, out, errOut)
	}
	if got := <-done; !strings.HasPrefix(got, "200 ") || !strings.HasSuffix(got, "close=false") {
		t.Errorf("slow request across an upgrade: %s; want 200, kept open", got)
	}
	if got, closed, _ := get("/"); !strings.HasPrefix(got, "200 hello") || closed {
		t.Errorf("request after the slow one: %s close=%v", got, closed)
	}
	// The new daemon logs what it took over once the old one has passed
	// its last connection, which may be a moment after the request that
	// went over was answered.
	tookOver := func() int {
		logText, _ := os.ReadFile(filepath.Join(in.dir, "logs", "smoothserve.log"))
		return strings.Count(string(logText), `msg="took over the previous smoothserve's connections" clients=1 `)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tookOver() < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := tookOver(); n != 4 {
		t.Errorf("the daemon log says %d times that 1 client connection was taken over; want 4", n)
	}
}

// establishedTo is the set of established TCP connections to 127.0.0.1 on
// ports, as the kernel lists them (/proc/net/tcp, what ss shows): each as
// "instance port <- client port".
func establishedTo(t *testing.T, ports []int) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		// sl local_address rem_address st ...: addresses as hex ip:port.
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "01" { // 01: ESTABLISHED
			continue
		}
		lip, lport, ok1 := strings.Cut(f[1], ":")
		_, rport, ok2 := strings.Cut(f[2], ":")
		lp, err1 := strconv.ParseInt(lport, 16, 32)
		rp, err2 := strconv.ParseInt(rport, 16, 32)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || lip != "0100007F" || !slices.Contains(ports, int(lp)) {
			continue
		}
		set[fmt.Sprintf("%d <- %d", lp, rp)] = true
	}
	return set
}

func TestUpgradeAppliesTheConfigurationAfresh(t *testing.T) {
	e := newEnv(t, 30)
	e.service("keep", "keep.test", 2, "")
	e.service("gone", "gone.test", 1, "")
	e.service("grow", "grow.test", 1, "")
	editPort := e.service("edit", "edit.test", 1, "")
	// scale keeps its ports and gets a second instance: room for 2.
	scalePort := e.ports.block(4)
	scaleYAML := func(count int) {
		writeFile(t, filepath.Join(e.dir, "services", "scale.yaml"), fmt.Sprintf(
			"name: scale\nserver_name: scale.test\nstart_instance_port: %d\ninstance_count: %d\nexecutable_path: ./app/demo\nhealth_check: /healthz\n", scalePort, count))
	}
	scaleYAML(1)
	in := install(e)
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	byService := func() map[string]map[int]bool {
		m := map[string]map[int]bool{}
		for name, insts := range instancesOf(t, in.statusJSON()) {
			m[name] = map[int]bool{}
			for _, i := range insts {
				if i["state"] == "ready" {
					m[name][int(i["pid"].(float64))] = true
				}
			}
		}
		return m
	}
	before := byService()

	// The new configuration: "gone" removed, "grow" with 2 instances on
	// other ports, "scale" with 2 on the same, "edit" with another
	// environment, "new" added.
	os.Remove(filepath.Join(e.dir, "services", "gone.yaml"))
	e.service("new", "new.test", 1, "")
	scaleYAML(2)
	writeFile(t, filepath.Join(e.dir, "services", "edit.yaml"), fmt.Sprintf(
		"name: edit\nserver_name: edit.test\nstart_instance_port: %d\ninstance_count: 1\nexecutable_path: ./app/demo\nhealth_check: /healthz\nenv:\n  EDITED: \"1\"\n", editPort))
	// grow's range grows past what was reserved for it: it moves where
	// there is room.
	writeFile(t, filepath.Join(e.dir, "services", "grow.yaml"), fmt.Sprintf(
		"name: grow\nserver_name: grow.test\nstart_instance_port: %d\ninstance_count: 2\nexecutable_path: ./app/demo\nhealth_check: /healthz\n", e.ports.block(4)))
	old := in.daemonPid()
	if code, out, errOut := in.run("upgrade"); code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", code, out, errOut)
	}
	waitGone(t, old, 10*time.Second)

	deadline := time.Now().Add(20 * time.Second)
	var after map[string]map[int]bool
	for {
		after = byService()
		if len(after["grow"]) == 2 && len(after["scale"]) == 2 && len(after["new"]) == 1 && after["gone"] == nil &&
			len(after["edit"]) == 1 && !subset(before["edit"], after["edit"]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the upgrade: %v", after)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("instances before %v, after %v", before, after)
	if len(before["keep"]) != 2 || len(before["gone"]) != 1 || len(before["grow"]) != 1 || len(before["scale"]) != 1 || len(before["edit"]) != 1 {
		t.Fatalf("before the upgrade: %v", before)
	}
	if !subset(before["keep"], after["keep"]) || len(after["keep"]) != 2 {
		t.Errorf("unchanged service: %v → %v, want its instances kept", before["keep"], after["keep"])
	}
	if !subset(before["scale"], after["scale"]) {
		t.Errorf("service with one more instance: %v → %v, want its instance kept", before["scale"], after["scale"])
	}
	// Only "edit" ran an adopted instance with other settings: the new
	// daemon rolled it, and nothing else. Had it rolled another service too,
	// that rollout would have begun as soon as edit's ended.
	var rollouts map[string]any
	for range 50 {
		rollouts = lastRollouts(t, in.statusJSON())
		if r, ok := rollouts["edit"].(map[string]any); ok && r["outcome"] != "running" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r, ok := rollouts["edit"].(map[string]any); !ok || r["outcome"] != "ok" || r["trigger"] != "configuration changed (reload)" {
		t.Errorf("edit's last rollout: %v, want an ok one triggered by the configuration change", rollouts["edit"])
	}
	time.Sleep(300 * time.Millisecond)
	for name, r := range lastRollouts(t, in.statusJSON()) {
		if name != "edit" && r != nil {
			t.Errorf("%s was rolled after the upgrade (%v): its instances run its settings already", name, r)
		}
	}
	if now := byService(); !maps.Equal(now["grow"], after["grow"]) || !maps.Equal(now["scale"], after["scale"]) {
		t.Errorf("instances replaced after the upgrade: grow %v → %v, scale %v → %v", after["grow"], now["grow"], after["scale"], now["scale"])
	}
	for pid := range before["gone"] {
		waitGone(t, pid, 15*time.Second)
	}
	for pid := range before["grow"] {
		if after["grow"][pid] {
			t.Errorf("changed service kept pid %d: want it rolled", pid)
		}
	}
	for host, want := range map[string]int{"keep.test": 200, "grow.test": 200, "new.test": 200, "scale.test": 200, "edit.test": 200} {
		if code, _, err := httpGet(in.proxyAddr(), host, "/"); err != nil || code != want {
			t.Errorf("GET %s: %d %v, want %d", host, code, err, want)
		}
	}
	if code, _, _ := httpGet(in.proxyAddr(), "gone.test", "/"); code != 404 {
		t.Errorf("GET gone.test: %d, want 404", code)
	}
	// The new daemon started "new" while it ran below its priority: the
	// instance, like the daemon now, runs at the priority it was given.
	want := niceOf(t, os.Getpid())
	if got := niceOf(t, in.daemonPid()); got != want {
		t.Errorf("the new daemon runs at nice %d, want %d", got, want)
	}
	if idle, err := priority.IdleOf(in.daemonPid()); err != nil || idle {
		t.Errorf("the new daemon is in the idle class (%v, %v): want the normal one once ready", idle, err)
	}
	// An instance that is gone by now was replaced, and is not checked.
	checked := 0
	for name, pids := range after {
		for pid := range pids {
			got, err := priority.NiceOf(pid)
			if errors.Is(err, syscall.ESRCH) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			checked++
			if got != want {
				t.Errorf("instance pid %d of %s runs at nice %d, want %d", pid, name, got, want)
			}
			if idle, err := priority.IdleOf(pid); err == nil && idle {
				t.Errorf("instance pid %d of %s is in the idle class, want the normal one", pid, name)
			}
		}
	}
	if checked < 7 {
		t.Errorf("only %d instances left to check the priority of; want at least the 7 of keep, grow, scale and new", checked)
	}
}

// niceOf is the nice value of process pid (of its main thread).
func niceOf(t *testing.T, pid int) int {
	t.Helper()
	n, err := priority.NiceOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
