package e2e

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
)

// A fleet of two smoothserve hosts behind a real HAProxy, configured and
// rolled as examples/fleet says (its haproxy.cfg and rollout.yml, run as
// they are), under the strict load through HAProxy the whole time:
//
//  1. a new release of the service (the demo's version 2): each host in
//     turn is drained, its service binary replaced, its services rolled
//     (smoothtool restart all), undrained, and waited for until HAProxy
//     has it UP again;
//  2. a new smoothserve on each host (smoothtool upgrade) while it is
//     drained: the new daemon keeps the drain (status, /health 503) until
//     the undrain, and the instances.
//
// No request may fail, streams of 3 s (longer than DrainDelay) included;
// each host's /health must go 503 and back to 200, and HAProxy must have
// taken it out of rotation and back, without a retry.
func TestFleetRollingDeployBehindHAProxy(t *testing.T) {
	haproxy := needCommand(t, "haproxy", "haproxy")
	ansible := fleetAnsible(t)
	f := newFleet(t)
	lb := f.startHAProxy(haproxy)

	before := map[string]map[int]int{}
	for _, h := range f.hosts {
		before[h.name] = h.instancesNow()
	}
	p := f.startPhase(lb, "release 2")
	f.rollout(lb, ansible, fleetRelease{service: bin.demo2})
	p.finish()
	for _, h := range f.hosts {
		for port, v := range h.versions() {
			if v != "2" {
				t.Errorf("%s: the instance on :%d runs version %q, want 2", h.name, port, v)
			}
		}
		old := slices.Collect(maps.Values(before[h.name]))
		for _, pid := range h.instancesNow() {
			if slices.Contains(old, pid) {
				t.Errorf("%s: instance pid %d was not replaced", h.name, pid)
			}
		}
	}
	f.expectServedBy(lb, "2")
	if t.Failed() {
		t.FailNow()
	}

	daemons := map[string]int{}
	instances := map[string]map[int]int{}
	for _, h := range f.hosts {
		daemons[h.name] = h.daemonPid()
		instances[h.name] = h.instancesNow()
	}
	p = f.startPhase(lb, "upgrade while drained")
	f.rollout(lb, ansible, fleetRelease{smoothserve: bin.smoothserve})
	w := p.finish()
	for _, h := range f.hosts {
		old, now := daemons[h.name], h.daemonPid()
		if now == old {
			t.Errorf("%s: the pid file still names daemon %d: no upgrade", h.name, old)
			continue
		}
		// Drained before the upgrade, still drained after it, under the
		// new daemon, until the undrain.
		_, _, answered := w.drained(h.name)
		if !slices.Equal(answered, []int{old, now}) {
			t.Errorf("%s: /health answered 503 from daemons %v, want the old %d then the new %d", h.name, answered, old, now)
		}
		if got := h.instancesNow(); !maps.Equal(got, instances[h.name]) {
			t.Errorf("%s: instances %v after the upgrade, want the same %v", h.name, got, instances[h.name])
		}
		if s := h.hostState(); s != "serving" {
			t.Errorf("%s: status says the host is %q after the rollout, want serving", h.name, s)
		}
	}
	f.expectServedBy(lb, "2")
}

// fleetAnsible is the path of ansible-playbook, or "" where it is not
// installed (the test then takes the playbook's steps itself), but for
// CI, where .ci/run installs it and its absence is a failure.
func fleetAnsible(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("ansible-playbook")
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("CI=%s and ansible-playbook is not on PATH (.ci/run installs Debian's ansible-core): %v", ci, err)
		}
		return ""
	}
	return path
}

// fleetPhase is one rollout under load: the strict client's mix through
// HAProxy, a paused load that sends into idle keep-alive connections,
// streams that outlast DrainDelay (a download, server-sent events: the
// host must let them end before it closes their connection), and the
// watch on /health and on HAProxy.
type fleetPhase struct {
	f                  *fleet
	lb                 *haproxyLB
	name               string
	watch              *fleetWatch
	load, paused, long *loadclient.Runner
	once               sync.Once
}

func (f *fleet) startPhase(lb *haproxyLB, name string) *fleetPhase {
	p := &fleetPhase{f: f, lb: lb, name: name, watch: f.watch(lb)}
	p.load = loadclient.Start(context.Background(), loadclient.Config{
		Addr: lb.addr, Host: "web.test", Conns: 8,
		Mix:    []loadclient.Kind{loadclient.Get, loadclient.Get, loadclient.Slow, loadclient.Post, loadclient.Stream},
		SlowMS: 300, PostMaxBytes: 64 << 10, StreamLines: 10, StreamMS: 30,
	})
	p.paused = loadclient.Start(context.Background(), loadclient.Config{
		Addr: lb.addr, Host: "web.test", Conns: 4, Pause: 600 * time.Millisecond,
		Mix:          []loadclient.Kind{loadclient.Get, loadclient.Post, loadclient.Stream},
		PostMaxBytes: 4 << 10, StreamLines: 3, StreamMS: 50,
	})
	p.long = loadclient.Start(context.Background(), loadclient.Config{
		Addr: lb.addr, Host: "web.test", Conns: 4,
		Mix: []loadclient.Kind{loadclient.Stream}, StreamLines: 30, StreamMS: 100, // 3 s each
	})
	f.t.Cleanup(p.stop) // a rollout that fails stops the test before finish
	time.Sleep(300 * time.Millisecond)
	return p
}

// stop ends the loads and the watch; it may be called again.
func (p *fleetPhase) stop() {
	p.once.Do(func() {
		p.load.Stop()
		p.paused.Stop()
		p.long.Stop()
		p.watch.stop()
	})
}

// finish lets the load run a little more on the rolled fleet, stops it,
// and checks the phase: no request failed, each host's /health went 503
// and back to 200 once, and HAProxy took the host out and back in.
func (p *fleetPhase) finish() *fleetWatch {
	t := p.f.t
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	p.stop()
	res, pres, lres := p.load.Stop(), p.paused.Stop(), p.long.Stop()
	t.Logf("%s: load through HAProxy: %v, slowest %v; paused load: %v; 3 s streams: %v", p.name, res, res.MaxLatency.Round(time.Millisecond), pres, lres)
	if err := res.Err(); err != nil {
		t.Errorf("%s: requests failed: %v", p.name, err)
	}
	if err := pres.Err(); err != nil {
		t.Errorf("%s: requests sent after a pause failed: %v", p.name, err)
	}
	if err := lres.Err(); err != nil {
		t.Errorf("%s: streams of 3 s failed: %v", p.name, err)
	}
	w := p.watch
	st, err := p.lb.stats()
	if err != nil {
		t.Errorf("%s: HAProxy's stats: %v", p.name, err)
	}
	for _, h := range p.f.hosts {
		t.Logf("%s: %s: %s", p.name, h.name, w.describe(h.name))
		if row, ok := st[h.name]; ok {
			t.Logf("%s: %s: haproxy counters: sessions=%s retries=%s redispatches=%s connection_errors=%s response_errors=%s",
				p.name, h.name, row["stot"], row["wretr"], row["wredis"], row["econ"], row["eresp"])
			// The drain, not HAProxy's retries, kept the requests: HAProxy
			// never sent one to a host that had closed its connection.
			if row["wretr"] != "0" || row["wredis"] != "0" {
				t.Errorf("%s: %s: HAProxy retried %s requests and redispatched %s, want none (the drain leaves it nothing to retry)",
					p.name, h.name, row["wretr"], row["wredis"])
			}
		}
		if got := w.healthCodes(h.name); !slices.Equal(got, []int{200, 503, 200}) {
			t.Errorf("%s: %s: /health answered %v in turn, want 200 503 200 (0: no answer)", p.name, h.name, got)
			continue
		}
		from, to, _ := w.drained(h.name)
		down, ok := w.firstLB(h.name, "DOWN", from)
		if !ok {
			t.Errorf("%s: %s: HAProxy never had it DOWN while /health answered 503", p.name, h.name)
			continue
		}
		t.Logf("%s: %s: /health 503 for %v; HAProxy had it DOWN %v after the drain began (DrainDelay %v)",
			p.name, h.name, fleetRound(to-from), fleetRound(down-from), fleetDrainDelay)
		if last := w.lastLB(h.name); last != "UP" {
			t.Errorf("%s: %s: HAProxy has it %q at the end, want UP", p.name, h.name, last)
		}
	}
	return w
}

// expectServedBy sends GETs through HAProxy, each on a connection of its
// own: every one must come from the version, and both hosts must answer.
func (f *fleet) expectServedBy(lb *haproxyLB, version string) {
	t := f.t
	t.Helper()
	byHost := map[string]int{}
	for range 40 {
		code, body, err := lb.get()
		if err != nil || code != 200 {
			t.Fatalf("GET / through HAProxy: %d %v %s", code, err, body)
		}
		if v := versionIn(body); v != version {
			t.Errorf("GET / through HAProxy answered by version %q, want %s: %s", v, version, strings.TrimSpace(body))
		}
		port := portIn(body)
		for _, h := range f.hosts {
			if h.owns(port) {
				byHost[h.name]++
			}
		}
	}
	if len(byHost) != len(f.hosts) {
		t.Errorf("40 GETs through HAProxy were answered by %v, want every host", byHost)
	}
}
