package e2e

import (
	"fmt"
	"maps"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// webRestarts are the smoothserve_instance_restarts_total series of web's
// slot 0, by reason.
func webRestarts(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	series := regexp.MustCompile(`^smoothserve_instance_restarts_total\{instance="0",reason="([a-z]+)",service="web"\}$`)
	out := map[string]float64{}
	for k, v := range scrape(t, admin) {
		if m := series.FindStringSubmatch(k); m != nil {
			out[m[1]] = v
		}
	}
	return out
}

// TestRestartCountersGoOnThroughAStopAnUpgradeAndAStart: the restarts of
// a slot, by reason, stay in /metrics while its service is stopped, go on
// through an upgrade meanwhile, and `start NAME` adds a "start"; the
// status's RESTARTS is their sum, and its SERVED goes on across upgrades.
func TestRestartCountersGoOnThroughAStopAnUpgradeAndAStart(t *testing.T) {
	e := newEnv(t, 8)
	admin := e.withAdmin()
	e.service("web", "web.test", 1, "")
	e.killBackgroundAtCleanup()
	// After an upgrade web's instance is no daemon's child: a stop ends
	// it (before the kill above, cleanups running last first).
	t.Cleanup(func() { e.tool("stop", "all") })
	run := func(args ...string) {
		t.Helper()
		if code, out, errOut := e.tool(args...); code != 0 {
			t.Fatalf("smoothtool %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	run("start")
	for range 3 {
		if status, _, err := httpGet(e.proxyAddr(), "web.test", "/"); err != nil || status != 200 {
			t.Fatalf("GET web.test: %d, %v", status, err)
		}
	}
	pid := e.apiStatus().Services[0].Instances[0].Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(15*time.Second, func() bool {
		in := e.apiStatus().Services[0].Instances[0]
		return in.Pid != pid && in.Pid != 0 && in.State.String() == "ready"
	}) {
		t.Fatalf("web#0 was not restarted within 15s after its crash")
	}
	run("restart", "web")
	served := e.apiStatus().Services[0].Instances[0].Served
	if served < 3 {
		t.Fatalf("web#0 served %d, want 3 or more", served)
	}

	want := map[string]float64{"crash": 1, "rollout": 1}
	total := func() (n float64) {
		for _, v := range want {
			n += v
		}
		return n
	}
	// metricsAre checks the series, waiting (up to 10 s) after an upgrade
	// for the old daemon's counters, which it passes once the new one is
	// ready.
	metricsAre := func(when string) {
		t.Helper()
		var got map[string]float64
		if !waitUntil(10*time.Second, func() bool { got = webRestarts(t, admin); return maps.Equal(got, want) }) {
			t.Errorf("%s: restarts %v, want %v", when, got, want)
		}
	}
	// statusAgrees checks that the status's RESTARTS is the sum of the
	// series, and that SERVED went on.
	statusAgrees := func(when string) {
		t.Helper()
		in := e.apiStatus().Services[0].Instances[0]
		if float64(in.Restarts) != total() || in.Served != served {
			t.Errorf("%s: status restarts %d served %d (%v); want %v (the metrics' sum), %d", when, in.Restarts, in.Served,
				in.RestartReasons, total(), served)
		}
	}
	metricsAre("running")
	statusAgrees("running")

	run("stop", "web")
	metricsAre("stopped")
	run("upgrade")
	metricsAre("stopped, after an upgrade")
	run("start", "web")
	want["start"] = 1
	metricsAre("started again")
	statusAgrees("started again")

	run("upgrade")
	metricsAre("running, after a second upgrade")
	statusAgrees("running, after a second upgrade")
	row := fmt.Sprintf(`\n  0 +[0-9]+ +[0-9]+ +ready +0 +%d +%v `, served, total())
	if code, out, _ := e.tool("status"); code != 0 || !regexp.MustCompile(row).MatchString(out) {
		t.Errorf("smoothtool status: exit %d, want web#0 with SERVED %d and RESTARTS %v\n%s", code, served, total(), out)
	}
}
