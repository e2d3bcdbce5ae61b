package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
)

// autoEnv runs a daemon with one auto_restart service "web" of count
// instances (room for max) that watches app/views, under the strict mixed
// load, and returns it with the load running.
type autoEnv struct {
	*env
	d     *daemon
	load  *loadclient.Runner
	start int // first instance port
	max   int
}

const quiet = 500 * time.Millisecond // delay_update_time in these tests

func newAutoEnv(t *testing.T, count, max int) *autoEnv {
	t.Helper()
	e := newEnv(t, 1+2*max)
	a := &autoEnv{env: e, start: e.ports.block(2 * max), max: max}
	writeFile(t, filepath.Join(e.dir, "app", "views", "index.html"), "<h1>v1</h1>\n")
	a.writeService(count, "")
	a.d = e.startDaemon()
	a.d.waitPids(e.proxyAddr(), "web.test", count, 15*time.Second)
	a.load = mixedLoad(e, "web.test")
	t.Cleanup(func() { a.load.Stop() })
	time.Sleep(300 * time.Millisecond)
	return a
}

func (a *autoEnv) serviceFile() string { return filepath.Join(a.dir, "services", "web.yaml") }

func (a *autoEnv) writeService(count int, extra string) {
	writeFile(a.t, a.serviceFile(), fmt.Sprintf(`name: web
server_name: web.test
start_instance_port: %d
instance_count: %d
executable_path: ./app/demo
health_check: /healthz
auto_restart: true
delay_update_time: %v
watch_files:
  - ./views
%s`, a.start, count, quiet.Seconds(), extra))
	// Keep the reservation of max instances: a later edit may grow it.
	if 2*count > 2*a.max {
		a.t.Fatalf("count %d over max %d", count, a.max)
	}
}

func (a *autoEnv) log() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "logs", "web.log"))
	return string(b)
}

func (a *autoEnv) rollouts() (begun, done, failed int) {
	l := a.log()
	return strings.Count(l, "smoothserve: rolling restart of web ("), strings.Count(l, "smoothserve: rolling restart of web done"),
		strings.Count(l, "smoothserve: rolling restart of web failed")
}

// awaitRollouts waits until n rollouts have ended, then one more quiet
// period and a bit, and checks that no further one began.
func (a *autoEnv) awaitRollouts(n int) {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, done, failed := a.rollouts()
		if done+failed >= n {
			break
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("waited 30s for %d rollouts; log:\n%s", n, tail(a.log(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * quiet)
	if begun, _, _ := a.rollouts(); begun != n {
		a.t.Errorf("%d rollouts began, want exactly %d; log:\n%s", begun, n, tail(a.log(), 3000))
	}
}

// finish stops the load and fails the test on any failed request.
func (a *autoEnv) finish() {
	a.t.Helper()
	res := a.load.Stop()
	a.t.Logf("load: %v", res)
	if err := res.Err(); err != nil {
		a.t.Errorf("requests failed: %v", err)
	}
}

// versions asks every ready instance in status, on its own port, which
// version it runs, and returns it by pid.
func (a *autoEnv) versions() map[int]string {
	a.t.Helper()
	code, out, errOut := a.tool("status", "--json")
	if code != 0 {
		a.t.Fatalf("smoothtool status --json: exit %d: %s", code, errOut)
	}
	var st struct {
		Services []struct {
			Instances []struct {
				Port, Pid int
				State     string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		a.t.Fatalf("status --json: %v\n%s", err, out)
	}
	m := map[int]string{}
	for _, in := range st.Services[0].Instances {
		if in.State != "ready" {
			continue
		}
		code, body, err := httpGet(fmt.Sprintf("127.0.0.1:%d", in.Port), "web.test", "/")
		if err != nil || code != 200 {
			a.t.Fatalf("GET / from the instance on :%d: %d %v", in.Port, code, err)
		}
		if pid, _ := pidIn(body); pid != in.Pid {
			a.t.Errorf("the instance on :%d is pid %d, status says %d", in.Port, pid, in.Pid)
		}
		_, v, _ := strings.Cut(body, "version=")
		m[in.Pid] = strings.TrimSpace(v)
	}
	return m
}

func (a *autoEnv) expectEveryInstanceAt(version string, count int, before map[int]bool) {
	a.t.Helper()
	vs := a.versions()
	if len(vs) != count {
		a.t.Errorf("%d instances ready, want %d: %v", len(vs), count, vs)
	}
	for pid, v := range vs {
		if v != version {
			a.t.Errorf("pid %d answers version %q, want %q", pid, v, version)
		}
		if before[pid] {
			a.t.Errorf("pid %d was not replaced", pid)
		}
	}
}

func TestDeployByRenameIntoPlace(t *testing.T) {
	a := newAutoEnv(t, 3, 3)
	before := instancePids(a.d)
	copyFile(t, bin.demo2, a.demo)
	a.awaitRollouts(1)
	a.finish()
	a.expectEveryInstanceAt("2", 3, before)
}

func TestDeployByDeleteAndSlowRewrite(t *testing.T) {
	a := newAutoEnv(t, 3, 3)
	before := instancePids(a.d)
	data, err := os.ReadFile(bin.demo2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(a.demo); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(a.demo, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	// An upload in 12 chunks that lasts longer than delay_update_time,
	// each pause far shorter: a loaded machine that makes one longer
	// must not make it a quiet period.
	chunk := len(data)/12 + 1
	for off := 0; off < len(data); off += chunk {
		if _, err := f.Write(data[off:min(off+chunk, len(data))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(quiet / 10)
	}
	f.Close()
	a.awaitRollouts(1)
	a.finish()
	a.expectEveryInstanceAt("2", 3, before)
}

func TestDeployByCopyingManyFilesIntoAWatchedFolder(t *testing.T) {
	a := newAutoEnv(t, 3, 3)
	before := instancePids(a.d)
	views := filepath.Join(a.dir, "app", "views")
	for i := 0; i < 40; i++ {
		dir := views
		if i >= 20 { // a subfolder made in the middle of the copy
			dir = filepath.Join(views, "partials")
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("page%02d.html", i)), strings.Repeat("x", 2000))
		time.Sleep(15 * time.Millisecond)
	}
	a.awaitRollouts(1)
	a.expectEveryInstanceAt("1", 3, before)

	// The subfolder made during the copy is watched too.
	before = instancePids(a.d)
	writeFile(t, filepath.Join(views, "partials", "footer.html"), "<footer>new</footer>\n")
	a.awaitRollouts(2)
	a.finish()
	a.expectEveryInstanceAt("1", 3, before)
}

func TestEditorSaveByRenameAndIgnoredFiles(t *testing.T) {
	a := newAutoEnv(t, 2, 2)
	views := filepath.Join(a.dir, "app", "views")
	// Files matching watch_ignore trigger nothing.
	writeFile(t, filepath.Join(views, ".index.html.swp"), "swap")
	writeFile(t, filepath.Join(views, "draft.tmp"), "tmp")
	writeFile(t, filepath.Join(views, "index.html~"), "backup")
	writeFile(t, filepath.Join(views, ".git", "HEAD"), "ref: refs/heads/main\n")
	time.Sleep(4 * quiet)
	if begun, _, _ := a.rollouts(); begun != 0 {
		t.Fatalf("ignored files made %d rollouts, want 0", begun)
	}
	// vim without backupcopy: the old file is renamed to a backup, the new
	// content written under the name, the swap file removed.
	before := instancePids(a.d)
	index := filepath.Join(views, "index.html")
	if err := os.Rename(index, index+"~"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, index, "<h1>v2</h1>\n")
	os.Remove(filepath.Join(views, ".index.html.swp"))
	a.awaitRollouts(1)
	a.finish()
	a.expectEveryInstanceAt("1", 2, before)
}

func TestYamlEditsApplyOrChangeNothing(t *testing.T) {
	a := newAutoEnv(t, 2, 4)
	before := instancePids(a.d)

	// An invalid edit is logged with file and line, and changes nothing.
	a.writeService(2, "instance_count_typo: 3\n")
	time.Sleep(4 * quiet)
	if begun, _, _ := a.rollouts(); begun != 0 {
		t.Fatalf("an invalid edit made %d rollouts", begun)
	}
	// Logged a quiet period after the edit, later on a loaded machine.
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(a.d.out.String(), "web.yaml:11: instance_count_typo") }) {
		t.Errorf("smoothserve did not log the invalid edit as FILE:LINE: key:\n%s", tail(a.d.out.String(), 2000))
	}
	if after := instancePids(a.d); len(after) != 2 || !subset(after, before) {
		t.Errorf("instances changed after an invalid edit: %v → %v", before, after)
	}

	// instance_count 2 → 4 and a new env: applied in one rollout.
	a.writeService(4, "env:\n  DEMO_VERSION: \"3\"\n")
	a.awaitRollouts(1)
	a.expectEveryInstanceAt("3", 4, before)

	// and back down to 1.
	before = instancePids(a.d)
	a.writeService(1, "env:\n  DEMO_VERSION: \"4\"\n")
	a.awaitRollouts(2)
	a.finish()
	a.expectEveryInstanceAt("4", 1, before)
	if n := len(instancePids(a.d)); n != 1 {
		t.Errorf("%d instances run after instance_count 1, want 1", n)
	}
}

// A service file gone for longer than delay_update_time (a checkout of
// another branch, an rsync --delete) leaves the instances serving; once
// it is back, the service is watched as before: its return is rolled out,
// and so is a new binary after it.
func TestAutoRestartResumesWhenTheServiceFileComesBack(t *testing.T) {
	a := newAutoEnv(t, 2, 2)
	before := instancePids(a.d)
	data, err := os.ReadFile(a.serviceFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(a.serviceFile()); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(a.d.out.String(), "the service is no longer configured") }) {
		t.Fatalf("smoothserve did not log the removed file:\n%s", tail(a.d.out.String(), 2000))
	}
	time.Sleep(2 * quiet)
	writeFile(t, a.serviceFile(), string(data))
	a.awaitRollouts(1)
	a.expectEveryInstanceAt("1", 2, before)

	before = instancePids(a.d)
	copyFile(t, bin.demo2, a.demo)
	a.awaitRollouts(2)
	a.finish()
	a.expectEveryInstanceAt("2", 2, before)
}

func TestBrokenUploadKeepsServingAndTheNextChangeTriesAgain(t *testing.T) {
	a := newAutoEnv(t, 2, 2)
	before := instancePids(a.d)
	installExecutable(t, a.demo, []byte("#!/bin/sh\necho 'fatal: half-uploaded release' >&2\nexit 1\n"))
	a.awaitRollouts(1)
	if _, _, failed := a.rollouts(); failed != 1 {
		t.Fatalf("the broken binary's rollout did not fail:\n%s", tail(a.log(), 2000))
	}
	if after := instancePids(a.d); !subset(before, after) {
		t.Errorf("old instances gone after a failed rollout: %v → %v", before, after)
	}
	copyFile(t, bin.demo2, a.demo)
	a.awaitRollouts(2)
	a.finish()
	a.expectEveryInstanceAt("2", 2, before)
}

// A new proxy port in an auto_restart service's file is opened at the edit
// and the service is served there; a port another process holds leaves the
// service on its old one, and the log says why. The next upgrade keeps the
// new port (inherited) and closes the one no service uses any more (the
// main file's ProxyPort stays open: every service may be served there).
func TestYamlEditMovesTheServiceToANewProxyPort(t *testing.T) {
	e := newEnv(t, 1+2+3)
	start := e.ports.block(2)
	own, held, moved := e.ports.next(), e.ports.next(), e.ports.next()
	writeWeb := func(extra string) {
		writeFile(t, filepath.Join(e.dir, "services", "web.yaml"), fmt.Sprintf(
			"name: web\nserver_name: web.test\nstart_instance_port: %d\ninstance_count: 1\nexecutable_path: ./app/demo\n"+
				"health_check: /healthz\nauto_restart: true\ndelay_update_time: %v\n%s", start, quiet.Seconds(), extra))
	}
	writeWeb(fmt.Sprintf("port: %d\n", own))
	in := install(e)
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	daemonLog := func() string {
		b, _ := os.ReadFile(filepath.Join(e.dir, "logs", "smoothserve.log"))
		return string(b)
	}
	// awaitLog waits until what is in the log n times.
	awaitLog := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(daemonLog(), what) < n {
			if time.Now().After(deadline) {
				t.Fatalf("smoothserve.log has %q fewer than %d times after 20s:\n%s", what, n, tail(daemonLog(), 3000))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	servedOn := func(port, want int) {
		t.Helper()
		code, body, err := httpGet("127.0.0.1:"+strconv.Itoa(port), "web.test", "/")
		if err != nil || code != want {
			t.Fatalf("GET web.test/ on :%d: %d %v, want %d\n%s", port, code, err, want, body)
		}
	}
	servedOn(own, 200)

	// A port another process listens on: the service stays where it is.
	other, err := netListen(held)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	writeWeb(fmt.Sprintf("port: %d\n", held))
	awaitLog("auto_restart: the new proxy port cannot be opened; the service stays on its old one", 1)
	awaitLog("auto_restart: rolled out", 1)
	if l := daemonLog(); !strings.Contains(l, fmt.Sprintf("listening on 127.0.0.1:%d", held)) {
		t.Errorf("the log does not name the port that could not be opened:\n%s", tail(l, 2000))
	}
	servedOn(own, 200)
	if _, port := serviceInfo(t, e.statusJSON(), "web"); port != own {
		t.Errorf("status shows web on port %d after the new port could not be opened, want %d", port, own)
	}

	// A free port: served there from the edit on; the old port serves no
	// service any more.
	writeWeb(fmt.Sprintf("port: %d\n", moved))
	awaitLog("auto_restart: listening on a new proxy port", 1)
	awaitLog("auto_restart: rolled out", 2)
	servedOn(moved, 200)
	servedOn(own, 404)

	// An upgrade inherits the new port and lets the unused one go.
	old := in.daemonPid()
	if code, out, errOut := in.run("upgrade"); code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", code, out, errOut)
	}
	waitGone(t, old, 30*time.Second)
	servedOn(moved, 200)
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(own), time.Second); err == nil {
		c.Close()
		t.Errorf("the old proxy port :%d still accepts after the upgrade", own)
	}
}

// A Capistrano-style deploy: executable_path goes through a symbolic link
// "current" to a release folder, and the deploy swaps the link atomically
// to the next release. That is a new executable, rolled out.
func TestAutoRestartFollowsASwappedReleaseSymlink(t *testing.T) {
	e := newEnv(t, 1+2)
	copyFile(t, bin.demo, filepath.Join(e.dir, "releases", "v1", "demo"))
	copyFile(t, bin.demo2, filepath.Join(e.dir, "releases", "v2", "demo"))
	current := filepath.Join(e.dir, "current")
	if err := os.Symlink(filepath.Join("releases", "v1"), current); err != nil {
		t.Fatal(err)
	}
	e.serviceOf("./current/demo", "web", "web.test", 1, fmt.Sprintf("auto_restart: true\ndelay_update_time: %v\n", quiet.Seconds()))
	d := e.startDaemon()
	before := d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	version := func() string {
		t.Helper()
		code, body, err := httpGet(e.proxyAddr(), "web.test", "/")
		if err != nil || code != 200 {
			t.Fatalf("GET web.test/: %d %v\n%s", code, err, body)
		}
		_, v, _ := strings.Cut(body, "version=")
		return strings.TrimSpace(v)
	}
	if v := version(); v != "1" {
		t.Fatalf("release 1 answers version %q", v)
	}

	// ln -s releases/v2 current.tmp && mv -T current.tmp current
	if err := os.Symlink(filepath.Join("releases", "v2"), current+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(current+".tmp", current); err != nil {
		t.Fatal(err)
	}
	awaitIn(t, filepath.Join(e.dir, "logs", "web.log"), "smoothserve: rolling restart of web done", 1)
	if v := version(); v != "2" {
		t.Errorf("after the swap the service answers version %q, want 2", v)
	}
	if after := instancePids(d); subset(after, before) {
		t.Errorf("the instance was not replaced: %v → %v", before, after)
	}
}
