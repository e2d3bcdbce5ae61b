package daemon

import (
	"bytes"
	"encoding/json"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"smoothserve/config"
	"smoothserve/control/api"
	"smoothserve/internal/promtext"
)

// TestARolloutsTwoProcessesOfASlotAreOneSeries: during a rollout the
// status lists a slot's old process and its replacement. The scrape has
// one series a slot (up while either is in rotation); it is not an error
// (two series of one name and labels fail the whole scrape). The restarts
// are the supervisor's counts, one a slot (TestSlotCountsGoOnAcrossUpgrades).
func TestARolloutsTwoProcessesOfASlotAreOneSeries(t *testing.T) {
	// An instance leads its process group, which procstat.Group reads: a
	// child of the test's own, not the test's group (whose leader may be
	// outside this pid namespace, where its id reads 0).
	leader := exec.Command("sleep", "60")
	leader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leader.Process.Kill(); leader.Wait() })
	me := leader.Process.Pid
	st := api.ServiceStatus{Name: "web", Instances: []api.InstanceStatus{
		{Slot: 0, Pid: me, State: api.StateReady},
		{Slot: 0, Pid: me, State: api.StateStarting},
		{Slot: 1, Pid: me, State: api.StateDraining},
		{Slot: 1, Pid: me, State: api.StateStarting},
		{Slot: 2, Pid: 0, State: api.StateBackoff},
	}}
	var s promtext.Set
	collectInstances(&s, &st)
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatalf("the scrape fails: %v", err)
	}
	text := b.String()
	for _, want := range []string{
		`smoothserve_upstream_up{instance="0",service="web"} 1`,
		`smoothserve_upstream_up{instance="1",service="web"} 0`,
		`smoothserve_upstream_up{instance="2",service="web"} 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no line %q in\n%s", want, text)
		}
	}
	if n := strings.Count(text, "smoothserve_instance_resident_memory_bytes{"); n != 2 {
		t.Errorf("%d memory series, want 2 (slots 0 and 1; slot 2 has no process):\n%s", n, text)
	}
}

// TestSlotCountsGoOnAcrossUpgrades: the restarts and requests served of
// each slot go to the next process in the counters an upgrade passes, a
// stopped service's too (its status shows no instance), and on from it
// at the next upgrade. The restarts are read as an earlier version sends
// them, which passed no Served.
func TestSlotCountsGoOnAcrossUpgrades(t *testing.T) {
	var passed counters
	older := `{"restarts":[{"service":"web","slot":0,"reason":"crash","count":5},{"service":"web","slot":0,"reason":"rollout","count":2},` +
		`{"service":"web","slot":1,"reason":"rollout","count":1},{"service":"gone","slot":0,"reason":"crash","count":9}]}`
	if err := json.Unmarshal([]byte(older), &passed); err != nil {
		t.Fatal(err)
	}
	passed.Served = []servedTotal{{"web", 0, 40}}
	next := countersDaemon(t, &config.Service{Name: "web", Enabled: true, InstanceCount: 2})
	next.goOnFrom(passed)
	want := []string{
		`smoothserve_instance_restarts_total{instance="0",reason="crash",service="web"} 5`,
		`smoothserve_instance_restarts_total{instance="0",reason="rollout",service="web"} 2`,
		`smoothserve_instance_restarts_total{instance="1",reason="rollout",service="web"} 1`,
	}
	if got := restartLines(t, next); !slices.Equal(got, want) {
		t.Errorf("after the upgrade, with web stopped (no instance in its status):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The next upgrade passes them on, gone's dropped (this process has
	// no such service).
	raw, err := json.Marshal(next.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var again counters
	if err := json.Unmarshal(raw, &again); err != nil {
		t.Fatal(err)
	}
	third := countersDaemon(t, &config.Service{Name: "web", Enabled: true, InstanceCount: 2})
	third.goOnFrom(again)
	if got := restartLines(t, third); !slices.Equal(got, want) {
		t.Errorf("after a second upgrade:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	served := map[int]uint64{}
	for _, c := range third.sup.Counts() {
		served[c.Slot] = c.Served
	}
	if want := map[int]uint64{0: 40, 1: 0}; !maps.Equal(served, want) {
		t.Errorf("served after a second upgrade: %v, want %v", served, want)
	}
}

// restartLines are the smoothserve_instance_restarts_total lines of d's
// scrape, sorted.
func restartLines(t *testing.T, d *Daemon) []string {
	t.Helper()
	var s promtext.Set
	collectRestarts(&s, d.sup.Counts())
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatalf("the scrape fails: %v", err)
	}
	var out []string
	for line := range strings.Lines(b.String()) {
		if strings.HasPrefix(line, "smoothserve_instance_restarts_total{") {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	slices.Sort(out)
	return out
}
