package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
	"smoothserve/internal/proctree"
)

// backgroundDaemons are the smoothserve processes of this env's
// configuration, whoever started them: smoothtool start does, in its own
// session, so they are not the test's children.
func (e *env) backgroundDaemons() []int {
	var pids []int
	for _, pid := range allPids() {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if args[0] == bin.smoothserve && slices.Contains(args, e.config) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killBackgroundAtCleanup makes sure no daemon that smoothtool started for
// this env, nor any of its instances, outlives the test; on failure it
// logs smoothserve.log.
func (e *env) killBackgroundAtCleanup() {
	e.t.Cleanup(func() {
		for _, pid := range e.backgroundDaemons() {
			kids := proctree.Children(pid)
			syscall.Kill(pid, syscall.SIGKILL)
			for _, kid := range kids {
				syscall.Kill(-kid, syscall.SIGKILL)
				syscall.Kill(kid, syscall.SIGKILL)
			}
		}
		if e.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(e.dir, "logs", "smoothserve.log"))
			e.t.Logf("smoothserve.log:\n%s", tail(string(b), 4000))
		}
	})
}

// statusJSON is smoothtool status --json, decoded generically so that the
// field names themselves are checked.
func (e *env) statusJSON() map[string]any {
	e.t.Helper()
	code, out, errOut := e.tool("status", "--json")
	if code != 0 {
		e.t.Fatalf("smoothtool status --json: exit %d\n%s%s", code, out, errOut)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	return st
}

// sessionOf is the session id of pid, from /proc: pid (comm) state ppid
// pgrp session ...
func sessionOf(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 4 {
		return -1
	}
	sid, _ := strconv.Atoi(f[3])
	return sid
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// instancesOf returns the instances of each service in a status, by name.
func instancesOf(t *testing.T, st map[string]any) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, s := range st["services"].([]any) {
		svc := s.(map[string]any)
		for _, in := range svc["instances"].([]any) {
			out[svc["name"].(string)] = append(out[svc["name"].(string)], in.(map[string]any))
		}
	}
	return out
}

// allMeasured reports whether every instance in a status has its memory.
func allMeasured(t *testing.T, st map[string]any) bool {
	for _, ins := range instancesOf(t, st) {
		for _, in := range ins {
			if _, ok := in["rss_bytes"]; !ok {
				return false
			}
		}
	}
	return true
}

// lastRollouts is each service's last_rollout in a status (nil: none).
func lastRollouts(t *testing.T, st map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, s := range st["services"].([]any) {
		svc := s.(map[string]any)
		out[svc["name"].(string)] = svc["last_rollout"]
	}
	return out
}

// getHeaders is one GET on its own connection: status, headers, and how
// long the answer took.
func getHeaders(addr, host string) (int, http.Header, time.Duration, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, nil, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(40 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header, time.Since(start), nil
}

func TestSmoothtoolRunsTheDaemonInTheBackground(t *testing.T) {
	e := newEnv(t, 16)
	e.service("alpha", "alpha.test", 2, "")
	e.service("beta", "beta.test", 3, "")
	e.killBackgroundAtCleanup()

	code, out, errOut := e.tool("-start", "all")
	if code != 0 {
		t.Fatalf("smoothtool -start all: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"alpha  running", "beta  running", "SLOT  PORT"} {
		if !strings.Contains(out, want) {
			t.Errorf("-start all printed no %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, " ready "); n != 5 {
		t.Errorf("-start all shows %d ready instances, want 5:\n%s", n, out)
	}
	sock := filepath.Join(e.dir, "smoothserve.sock")
	info, err := os.Lstat(sock)
	if err != nil || info.Mode().Type() != fs.ModeSocket || info.Mode().Perm() != 0o600 {
		t.Errorf("control socket %s: %v %v, want srw------- (a socket, mode 0600)", sock, info.Mode(), err)
	}

	st := e.statusJSON()
	if got, want := keys(st), []string{"config", "host", "pid", "services", "started_at"}; !slices.Equal(got, want) {
		t.Errorf("status keys %v, want %v", got, want)
	}
	daemon := int(st["pid"].(float64))
	if pids := e.backgroundDaemons(); !slices.Equal(pids, []int{daemon}) {
		t.Errorf("smoothserve processes of this config: %v, want the status's pid %d", pids, daemon)
	}
	if sid := sessionOf(daemon); sid != daemon {
		t.Errorf("smoothserve's session is %d, want its own (%d)", sid, daemon)
	}
	for _, s := range st["services"].([]any) {
		if got, want := keys(s.(map[string]any)), []string{"hosts", "instances", "name", "port", "state"}; !slices.Equal(got, want) {
			t.Errorf("service keys %v, want %v", got, want)
		}
	}
	// A status measures the instances within a second (a first measure
	// takes two samples 200 ms apart), and leaves out what it could not:
	// on a loaded machine the first may miss it, a later one has it.
	for deadline := time.Now().Add(10 * time.Second); !allMeasured(t, st) && time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		st = e.statusJSON()
	}
	var instancePids []int
	for name, ins := range instancesOf(t, st) {
		for _, in := range ins {
			// cpu_percent is there whenever rss_bytes is, 0.0 included.
			want := []string{"cpu_percent", "inflight", "pid", "port", "restarts", "rss_bytes", "served", "slot", "started_at", "state"}
			if got := keys(in); !slices.Equal(got, want) {
				t.Errorf("%s instance keys %v, want %v", name, got, want)
			}
			pid := int(in["pid"].(float64))
			if in["state"] != "ready" || !isChild(daemon, pid) {
				t.Errorf("%s instance %v: want ready, a child of smoothserve %d", name, in, daemon)
			}
			instancePids = append(instancePids, pid)
		}
	}
	if len(instancePids) != 5 {
		t.Fatalf("%d instances in the status, want 5", len(instancePids))
	}
	if code, body, err := httpGet(e.proxyAddr(), "alpha.test", "/"); code != 200 || err != nil {
		t.Errorf("alpha.test: %d %q %v", code, body, err)
	}

	// A second start finds it running and starts nothing.
	if code, out, errOut := e.tool("start"); code != 0 || !strings.Contains(out, "smoothserve pid "+strconv.Itoa(daemon)) {
		t.Errorf("start with the daemon running: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = e.tool("-stop", "all")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("smoothserve (pid %d) stopped", daemon)) {
		t.Fatalf("smoothtool -stop all: exit %d\n%s%s", code, out, errOut)
	}
	for _, pid := range append(instancePids, daemon) {
		if alive(pid) {
			t.Errorf("pid %d still running after smoothtool -stop all returned", pid)
		}
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("control socket %s left behind", sock)
	}
	code, out, errOut = e.tool("status")
	if want := "smoothtool: smoothserve is not running: no control socket at " + sock; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("status after stop: exit %d, stderr %q, want 1 and %q\n%s", code, errOut, want, out)
	}
}

func TestSmoothtoolStopsAndStartsOneService(t *testing.T) {
	e := newEnv(t, 16)
	e.service("alpha", "alpha.test", 2, "")
	e.service("beta", "beta.test", 2, "")
	e.killBackgroundAtCleanup()
	if code, out, errOut := e.tool("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	betaPids := map[int]bool{}
	for _, in := range instancesOf(t, e.statusJSON())["beta"] {
		betaPids[int(in["pid"].(float64))] = true
	}

	load := loadclient.Start(t.Context(), loadclient.Config{
		Addr: e.proxyAddr(), Host: "alpha.test", Conns: 4,
		Mix: []loadclient.Kind{loadclient.Get, loadclient.Slow}, SlowMS: 200,
	})
	time.Sleep(300 * time.Millisecond)
	code, out, errOut := e.tool("-stop", "beta")
	if code != 0 || !strings.Contains(out, "beta  stopped") || !strings.Contains(out, "alpha  running") {
		load.Stop()
		t.Fatalf("smoothtool -stop beta: exit %d\n%s%s", code, out, errOut)
	}
	status, h, took, err := getHeaders(e.proxyAddr(), "beta.test")
	if err != nil || status != 503 || h.Get("Retry-After") == "" || took > time.Second {
		t.Errorf("GET beta.test after -stop beta: %d, Retry-After %q, in %v, %v; want 503 with Retry-After at once",
			status, h.Get("Retry-After"), took, err)
	}
	for pid := range betaPids {
		if alive(pid) {
			t.Errorf("beta's pid %d still running after -stop beta", pid)
		}
	}
	time.Sleep(300 * time.Millisecond)
	res := load.Stop()
	t.Logf("alpha during -stop beta: %v", res)
	if err := res.Err(); err != nil {
		t.Errorf("alpha failed requests while beta stopped: %v", err)
	}

	code, out, errOut = e.tool("-start", "beta")
	if code != 0 || !strings.Contains(out, "beta  running") {
		t.Fatalf("smoothtool -start beta: exit %d\n%s%s", code, out, errOut)
	}
	pid, err := getPid(e.proxyAddr(), "beta.test")
	if err != nil || betaPids[pid] {
		t.Errorf("beta.test after -start beta: pid %d, %v; want a new instance", pid, err)
	}
	if code, out, errOut := e.tool("-stop", "all", "-force"); code != 0 {
		t.Errorf("smoothtool -stop all -force: exit %d\n%s%s", code, out, errOut)
	}
	if pids := e.backgroundDaemons(); len(pids) != 0 {
		t.Errorf("smoothserve %v still running after -stop all -force", pids)
	}
}

// An operator must reach the daemon while a service file is broken, and
// start must refuse to start one with it.
func TestSmoothtoolWithABrokenServiceFile(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 1, "")
	e.killBackgroundAtCleanup()
	if code, out, errOut := e.tool("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	writeFile(t, filepath.Join(e.dir, "services", "web.yaml"), "name: web\ninstance_cout: 3\n")
	if code, out, errOut := e.tool("status"); code != 0 || !strings.Contains(out, "web  running") {
		t.Errorf("status with a broken service file: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := e.tool("stop"); code != 0 {
		t.Errorf("stop with a broken service file: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := e.tool("start")
	if code != 1 || !strings.Contains(errOut, "web.yaml:2: instance_cout: unknown key") {
		t.Errorf("start with a broken service file: exit %d, stderr %q; want 1 naming web.yaml:2", code, errOut)
	}
	if pids := e.backgroundDaemons(); len(pids) != 0 {
		t.Errorf("smoothserve %v running after a refused start", pids)
	}
}

// An invalid configuration on disk does not lock an operator out of the
// running daemon: smoothtool warns, naming the problem, and goes on. An
// upgrade, whose new process would load it and exit, is refused with every
// problem before the daemon is asked, and the daemon goes on serving.
func TestSmoothtoolWithAnInvalidConfigurationOnDisk(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 1, "")
	e.killBackgroundAtCleanup()
	if code, out, errOut := e.tool("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	daemon := int(e.statusJSON()["pid"].(float64))
	e.writeMain("ProxyPrt: 5\n")
	mainProblem := e.config + ":4: ProxyPrt: unknown key"
	code, out, errOut := e.tool("status")
	if code != 0 || !strings.Contains(out, "web  running") || !strings.Contains(errOut, "warning: "+e.config+" is invalid") ||
		!strings.Contains(errOut, mainProblem) {
		t.Errorf("status with a typo in smoothserve.yaml: exit %d, want 0 with a warning naming %q\n%s%s", code, mainProblem, out, errOut)
	}
	code, out, errOut = e.tool("upgrade")
	if code != 1 || !strings.Contains(errOut, "upgrade refused") || !strings.Contains(errOut, mainProblem) {
		t.Errorf("upgrade with a typo in smoothserve.yaml: exit %d, want 1 naming %q\n%s%s", code, mainProblem, out, errOut)
	}

	e.writeMain("")
	webFile := filepath.Join(e.dir, "services", "web.yaml")
	body, err := os.ReadFile(webFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, webFile, string(body)+"instance_cout: 2\n")
	serviceProblem := fmt.Sprintf("%s:%d: instance_cout: unknown key", webFile, strings.Count(string(body), "\n")+1)
	code, out, errOut = e.tool("upgrade")
	if code != 1 || !strings.Contains(errOut, "upgrade refused") || !strings.Contains(errOut, serviceProblem) {
		t.Errorf("upgrade with a typo in web.yaml: exit %d, want 1 naming %q\n%s%s", code, serviceProblem, out, errOut)
	}
	if pid := int(e.statusJSON()["pid"].(float64)); pid != daemon {
		t.Errorf("smoothserve pid %d after the refused upgrades, want %d still", pid, daemon)
	}
	log, _ := os.ReadFile(filepath.Join(e.dir, "logs", "smoothserve.log"))
	if strings.Contains(string(log), "control: upgrade") {
		t.Errorf("the daemon was asked to upgrade with the configuration invalid:\n%s", tail(string(log), 2000))
	}
	if code, out, errOut := e.tool("stop"); code != 0 {
		t.Errorf("stop: exit %d\n%s%s", code, out, errOut)
	}
}

// When the daemon cannot start, smoothtool says why with its log.
func TestSmoothtoolStartShowsWhyTheDaemonExited(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 1, "")
	e.killBackgroundAtCleanup()
	busy, err := net.Listen("tcp", e.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	code, out, errOut := e.tool("-start", "all")
	if code != 1 || !strings.Contains(errOut, "smoothserve exited while starting") ||
		!strings.Contains(errOut, "listening on "+e.proxyAddr()) {
		t.Errorf("start with the proxy port taken: exit %d, want 1 with the log's reason\n%s%s", code, out, errOut)
	}
}

// One daemon per control socket; the socket of one that was killed does
// not stop the next.
func TestControlSocketBelongsToOneDaemon(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 1, "")
	first := e.startDaemon()
	first.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	sock := filepath.Join(e.dir, "smoothserve.sock")

	out, err := exec.Command(bin.smoothserve, "--config", e.config).CombinedOutput()
	want := "another smoothserve is running: control socket " + sock + " answers"
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Errorf("second smoothserve: %v, want exit 1 with %q\n%s", err, want, out)
	}
	if _, err := getPid(e.proxyAddr(), "web.test"); err != nil {
		t.Errorf("the first daemon stopped serving: %v", err)
	}

	first.killAll() // kill -9: the socket stays, stale
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("no stale socket after kill -9: %v", err)
	}
	code, _, errOut := e.tool("status")
	if !strings.Contains(errOut, "smoothserve is not running: control socket "+sock+" refuses connections") || code != 1 {
		t.Errorf("status with a stale socket: exit %d, stderr %q", code, errOut)
	}
	second := e.startDaemon()
	second.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	if code, out, errOut := e.tool("status"); code != 0 || !strings.Contains(out, fmt.Sprintf("pid %d", second.pid())) {
		t.Errorf("status of the daemon that replaced a stale socket: exit %d\n%s%s", code, out, errOut)
	}
}
