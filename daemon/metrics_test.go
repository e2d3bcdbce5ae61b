package daemon

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"smoothserve/control/api"
	"smoothserve/internal/promtext"
)

// TestARolloutsTwoProcessesOfASlotAreOneSeries: during a rollout the
// status lists a slot's old process and its replacement, each with the
// slot's restart counts. The scrape has one series a slot (up while either
// is in rotation), and counts the slot's restarts once; it is not an error
// (two series of one name and labels fail the whole scrape).
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
	reasons := map[string]int{"rollout": 3, "crash": 1}
	st := api.ServiceStatus{Name: "web", Instances: []api.InstanceStatus{
		{Slot: 0, Pid: me, State: api.StateReady, RestartReasons: reasons},
		{Slot: 0, Pid: me, State: api.StateStarting, RestartReasons: reasons},
		{Slot: 1, Pid: me, State: api.StateDraining, RestartReasons: map[string]int{"rollout": 2}},
		{Slot: 1, Pid: me, State: api.StateStarting, RestartReasons: map[string]int{"rollout": 2}},
		{Slot: 2, Pid: 0, State: api.StateBackoff},
	}}
	var s promtext.Set
	collectInstances(&s, &st)
	for k, n := range restartTotals([]api.ServiceStatus{st}, map[restartKey]uint64{{"web", 0, "rollout"}: 10}) {
		s.Add(descRestarts, float64(n), k.service, strconv.Itoa(k.slot), k.reason)
	}
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatalf("the scrape fails: %v", err)
	}
	text := b.String()
	for _, want := range []string{
		`smoothserve_upstream_up{instance="0",service="web"} 1`,
		`smoothserve_upstream_up{instance="1",service="web"} 0`,
		`smoothserve_upstream_up{instance="2",service="web"} 0`,
		`smoothserve_instance_restarts_total{instance="0",reason="rollout",service="web"} 13`,
		`smoothserve_instance_restarts_total{instance="0",reason="crash",service="web"} 1`,
		`smoothserve_instance_restarts_total{instance="1",reason="rollout",service="web"} 2`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no line %q in\n%s", want, text)
		}
	}
	if n := strings.Count(text, "smoothserve_instance_resident_memory_bytes{"); n != 2 {
		t.Errorf("%d memory series, want 2 (slots 0 and 1; slot 2 has no process):\n%s", n, text)
	}
}
