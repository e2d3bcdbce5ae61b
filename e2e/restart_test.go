package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
	"smoothserve/internal/proctree"
)

// tool runs smoothtool against the env's configuration.
func (e *env) tool(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	return runTool(e.t, bin.smoothtool, e.dir, append(args, "-config", e.config)...)
}

// runTool runs a smoothtool binary in dir and returns its exit code and
// output.
func runTool(t *testing.T, tool, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Errorf("running %s %v: %v", tool, args, err)
		return -1, "", err.Error()
	}
	return 0, out.String(), errb.String()
}

// mixedLoad is the strict client's mix: fast GETs, 300 ms GETs that are in
// flight when their instance drains, POSTs of up to 64 KiB echoed back, and
// chunked responses streamed a line every 30 ms for 270 ms.
func mixedLoad(e *env, host string) *loadclient.Runner {
	return loadclient.Start(context.Background(), mixedConfig(e, host))
}

// mixedConfig is mixedLoad's configuration.
func mixedConfig(e *env, host string) loadclient.Config {
	return loadConfig(e, host, loadclient.Get, loadclient.Get, loadclient.Slow, loadclient.Post, loadclient.Stream)
}

// loadOf is mixedLoad with another mix.
func loadOf(e *env, host string, mix ...loadclient.Kind) *loadclient.Runner {
	return loadclient.Start(context.Background(), loadConfig(e, host, mix...))
}

func loadConfig(e *env, host string, mix ...loadclient.Kind) loadclient.Config {
	return loadclient.Config{
		Addr: e.proxyAddr(), Host: host, Conns: 8, Mix: mix,
		SlowMS: 300, PostMaxBytes: 64 << 10, StreamLines: 10, StreamMS: 30,
	}
}

// pausedLoad sends requests after idle gaps of up to 600 ms on each of its
// connections, into the proxy's lulls: the instance may have closed the
// pooled connection the proxy then takes (closesIdleConns).
func pausedLoad(e *env, host string) *loadclient.Runner {
	return loadclient.Start(context.Background(), loadclient.Config{
		Addr: e.proxyAddr(), Host: host, Conns: 4, Pause: 600 * time.Millisecond,
		Mix:          []loadclient.Kind{loadclient.Get, loadclient.Post, loadclient.Stream},
		PostMaxBytes: 4 << 10, StreamLines: 3, StreamMS: 50,
	})
}

// closesIdleConns is a service file's args for demo instances that close a
// keep-alive connection idle for 200 ms, as real servers do (Node's http
// after 5 s, gunicorn after 2 s), only sooner: the proxy's pooled
// connections to them are closed under it all the time.
const closesIdleConns = "args: [\"-port={port}\", \"-idle-timeout=200ms\"]\n"

func instancePids(d *daemon) map[int]bool {
	m := map[int]bool{}
	for _, pid := range proctree.Children(d.pid()) {
		if alive(pid) {
			m[pid] = true
		}
	}
	return m
}

func TestRollingRestartsLoseNoRequest(t *testing.T) {
	for _, strategy := range []string{"surge", "in_place"} {
		t.Run(strategy, func(t *testing.T) {
			e := newEnv(t, 8)
			e.service("web", "web.test", 3, "restart_strategy: "+strategy+"\n"+closesIdleConns)
			d := e.startDaemon()
			d.waitPids(e.proxyAddr(), "web.test", 3, 15*time.Second)

			load := mixedLoad(e, "web.test")
			paused := pausedLoad(e, "web.test")
			time.Sleep(500 * time.Millisecond)
			for round := 1; round <= 5; round++ {
				before := instancePids(d)
				start := time.Now()
				code, out, errOut := e.tool("-restart", "web")
				if code != 0 {
					load.Stop()
					paused.Stop()
					t.Fatalf("round %d: smoothtool -restart web: exit %d\n%s%s", round, code, out, errOut)
				}
				after := instancePids(d)
				for pid := range before {
					if after[pid] {
						t.Errorf("round %d: pid %d was not replaced (before %v, after %v)", round, pid, before, after)
					}
				}
				if len(after) != 3 {
					t.Errorf("round %d: %d instances after the restart, want 3: %v", round, len(after), after)
				}
				if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; lines < 3 {
					t.Errorf("round %d: smoothtool printed %d lines, want one per instance:\n%s", round, lines, out)
				}
				t.Logf("round %d: %v\n%s", round, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
			}
			time.Sleep(300 * time.Millisecond)
			res, pres := load.Stop(), paused.Stop()
			t.Logf("%s: %v; after pauses: %v", strategy, res, pres)
			if err := res.Err(); err != nil {
				t.Errorf("requests failed across 5 rolling restarts (%s): %v", strategy, err)
			}
			if err := pres.Err(); err != nil {
				t.Errorf("requests sent after a pause failed across 5 rolling restarts (%s): %v", strategy, err)
			}
			for _, k := range []loadclient.Kind{loadclient.Get, loadclient.Slow, loadclient.Post, loadclient.Stream} {
				if res.ByKind[k].OK == 0 {
					t.Errorf("no %v request completed: the load did not exercise it", k)
				}
			}
		})
	}
}

func TestFailedRolloutKeepsTheOldInstancesServing(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 3, "start_timeout: 3\n")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 3, 15*time.Second)
	before := instancePids(d)

	load := mixedLoad(e, "web.test")
	time.Sleep(300 * time.Millisecond)
	// A new build that cannot start.
	installExecutable(t, e.demo, []byte("#!/bin/sh\necho 'fatal: broken build cannot open its database' >&2\nexit 1\n"))
	code, out, errOut := e.tool("-restart", "web")
	time.Sleep(300 * time.Millisecond)
	res := load.Stop()
	t.Logf("load: %v", res)
	if code != 1 {
		t.Errorf("smoothtool -restart with a broken binary: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"web#0", "broken build cannot open its database"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("smoothtool's error does not show %q:\n%s", want, errOut)
		}
	}
	if err := res.Err(); err != nil {
		t.Errorf("requests failed during the failed rollout: %v", err)
	}
	after := instancePids(d)
	for pid := range before {
		if !after[pid] {
			t.Errorf("old instance pid %d is gone after the failed rollout", pid)
		}
	}
}

func TestInPlaceRestartOfASingleInstanceMakesRequestsWait(t *testing.T) {
	e := newEnv(t, 4)
	e.service("web", "web.test", 1, "restart_strategy: in_place\n")
	d := e.startDaemon()
	before := d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	load := mixedLoad(e, "web.test")
	time.Sleep(500 * time.Millisecond)
	for round := 1; round <= 3; round++ {
		if code, out, errOut := e.tool("restart", "web"); code != 0 {
			load.Stop()
			t.Fatalf("round %d: smoothtool restart web: exit %d\n%s%s", round, code, out, errOut)
		}
	}
	time.Sleep(300 * time.Millisecond)
	res := load.Stop()
	t.Logf("load: %v (slowest %v)", res, res.MaxLatency)
	if err := res.Err(); err != nil {
		t.Fatalf("requests failed while the only instance was replaced in place: %v", err)
	}
	after := instancePids(d)
	for pid := range before {
		if after[pid] {
			t.Errorf("pid %d was not replaced", pid)
		}
	}
}
