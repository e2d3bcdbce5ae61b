package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
	"smoothserve/internal/proctree"
)

// runCheck runs smoothserve --check and returns its exit code and output.
func runCheck(t *testing.T, config string) (int, string) {
	t.Helper()
	out, err := exec.Command(bin.smoothserve, "--check", "--config", config).CombinedOutput()
	if err == nil {
		return 0, string(out)
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatal(err)
	}
	return ee.ExitCode(), string(out)
}

func TestSeedConfigsLoadUnchanged(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"smoothserve.yaml", "services/example.com.yaml"} {
		copyFile(t, filepath.Join("..", "config", "testdata", "seed", f), filepath.Join(dir, f))
	}
	// The seed names an executable the user provides: give it one.
	copyFile(t, bin.demo, filepath.Join(dir, "your/web/service/bin/file"))
	code, out := runCheck(t, filepath.Join(dir, "smoothserve.yaml"))
	if code != 0 {
		t.Fatalf("--check of the seed's files: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "CommandPort") {
		t.Errorf("--check does not mention that CommandPort opens nothing:\n%s", out)
	}
}

func TestRepositoryConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"smoothserve.yaml", "services/example.yaml"} {
		copyFile(t, filepath.Join("..", f), filepath.Join(dir, f))
	}
	copyFile(t, bin.demo, filepath.Join(dir, "examples/demo/demo"))
	if code, out := runCheck(t, filepath.Join(dir, "smoothserve.yaml")); code != 0 {
		t.Fatalf("--check of the repository's smoothserve.yaml (what make run uses): exit %d\n%s", code, out)
	}
}

func TestCheckRejectsNamingFileAndLine(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(e *env)
		wants []string // each must appear in the output
	}{
		{"misspelt key", func(e *env) {
			e.service("web", "a.test", 2, "instance_cout: 3\n")
		}, []string{"web.yaml:7: instance_cout"}},
		{"missing executable", func(e *env) {
			e.service("web", "a.test", 2, "")
			os.Remove(e.demo)
		}, []string{"web.yaml:5: executable_path"}},
		{"port clash", func(e *env) {
			start := e.service("web", "a.test", 2, "")
			writeFile(t, filepath.Join(e.dir, "services", "api.yaml"), fmt.Sprintf(
				"name: api\nserver_name: b.test\nstart_instance_port: %d\ninstance_count: 2\nexecutable_path: ./app/demo\n", start+1))
		}, []string{"start_instance_port: service", "api.yaml:3", "web.yaml:3"}},
		{"instance port is the proxy port", func(e *env) {
			writeFile(t, filepath.Join(e.dir, "services", "web.yaml"), fmt.Sprintf(
				"name: web\nstart_instance_port: %d\ninstance_count: 1\nexecutable_path: ./app/demo\n", e.proxyPort))
		}, []string{"web.yaml:2: start_instance_port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 12)
			tt.edit(e)
			code, out := runCheck(t, e.config)
			if code != 1 {
				t.Fatalf("--check exit %d, want 1\n%s", code, out)
			}
			for _, w := range tt.wants {
				if !strings.Contains(out, w) {
					t.Errorf("--check output does not contain %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestTwoServicesOnOnePortRoutedByHost(t *testing.T) {
	e := newEnv(t, 16)
	e.service("alpha", "alpha.test, www.alpha.test", 3, "")
	e.service("beta", "*.beta.test", 3, "")
	d := e.startDaemon()
	alpha := d.waitPids(e.proxyAddr(), "alpha.test", 3, 15*time.Second)
	beta := d.waitPids(e.proxyAddr(), "x.beta.test", 3, 15*time.Second)
	for pid := range alpha {
		if beta[pid] {
			t.Errorf("pid %d answered for both services", pid)
		}
	}
	if got := d.waitPids(e.proxyAddr(), "WWW.ALPHA.TEST:80", 1, 5*time.Second); !subset(got, alpha) {
		t.Errorf("www.alpha.test was answered by %v, not alpha's instances %v", got, alpha)
	}
	code, body, err := httpGet(e.proxyAddr(), "nobody.test", "/")
	if err != nil || code != 404 || body != "Not Found\n" {
		t.Errorf("unknown host: %d %q %v, want 404 with the status text alone (nothing of the request echoed)", code, body, err)
	}
	if n := len(proctree.Children(d.pid())); n != 6 {
		t.Errorf("smoothserve has %d child processes, want 6", n)
	}
}

func subset(a, b map[int]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func TestKill9OfAnInstanceFailsNoGET(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 3, "")
	d := e.startDaemon()
	before := d.waitPids(e.proxyAddr(), "web.test", 3, 15*time.Second)

	run := loadclient.Start(context.Background(), loadclient.Config{
		Addr: e.proxyAddr(), Host: "web.test", Conns: 8,
		Mix: []loadclient.Kind{loadclient.Get, loadclient.Get, loadclient.Slow}, SlowMS: 200,
	})
	time.Sleep(time.Second)
	var victim int
	for pid := range before {
		victim = pid
		break
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// A replacement must be serving within a few seconds (15 s at most:
	// a loaded machine may take a while to start and check it).
	var replacement int
	for replacement == 0 && time.Since(killed) < 15*time.Second {
		for _, pid := range proctree.Children(d.pid()) {
			if !before[pid] && alive(pid) {
				if p, err := getPid(e.proxyAddr(), "web.test"); err == nil && p == pid {
					replacement = pid
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	res := run.Stop()
	t.Logf("load: %v; replacement pid %d serving %v after the kill", res, replacement, time.Since(killed).Round(time.Millisecond))
	if err := res.Err(); err != nil {
		t.Errorf("GETs failed across kill -9 of an instance: %v", err)
	}
	if replacement == 0 {
		t.Fatalf("no replacement for pid %d served within 15s; children now %v", victim, proctree.Children(d.pid()))
	}
	if n := len(proctree.Children(d.pid())); n != 3 {
		t.Errorf("%d instances after the replacement, want 3", n)
	}
}

func TestSIGTERMFinishesSlowRequestsAndLeavesNoInstance(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 3, "")
	d := e.startDaemon()
	pids := d.waitPids(e.proxyAddr(), "web.test", 3, 15*time.Second)

	const n = 12
	var wg sync.WaitGroup
	results := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := httpGet(e.proxyAddr(), "web.test", "/slow?ms=1500")
			results[i] = fmt.Sprintf("%d %v %q", code, err, strings.TrimSpace(body))
			if err == nil && code == 200 && strings.HasPrefix(body, "slow 1500ms") {
				results[i] = "ok"
			}
		}()
	}
	// Every request is at an instance when SIGTERM comes, not merely
	// sent: one still on its way would meet a closed port.
	e.waitInFlight(n)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, r := range results {
		if r != "ok" {
			t.Errorf("slow request %d during SIGTERM: %s, want 200", i, r)
		}
	}
	if code := d.wait(30 * time.Second); code != 0 {
		t.Errorf("smoothserve exited %d after SIGTERM, want 0\n%s", code, d.out.String())
	}
	for pid := range pids {
		if alive(pid) {
			t.Errorf("instance pid %d still running after smoothserve exited", pid)
		}
	}
}
