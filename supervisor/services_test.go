package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"

	"smoothserve/upstream"
)

func TestAddedServiceStartsAndRemovedOneStops(t *testing.T) {
	cfg := testConfig(t, 1, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)

	api := *testConfig(t, 2, "normal").Services[0]
	api.Name = "api"
	set := upstream.NewSet("api", api.StartTimeout)
	if err := h.sup.AddService(&api, set); err != nil {
		t.Fatalf("AddService: %v", err)
	}
	if err := h.sup.AddService(&api, set); err == nil {
		t.Errorf("AddService of a service that runs already: no error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sup.StartService(ctx, "api"); err != nil {
		t.Fatalf("waiting for the added service: %v", err)
	}
	if n := len(set.Backends()); n != 2 {
		t.Errorf("the added service has %d instances in rotation, want 2", n)
	}
	var pids []int
	for _, st := range h.sup.Status() {
		if st.Name == "api" {
			for _, in := range st.Instances {
				pids = append(pids, in.Pid)
			}
		}
	}
	if len(pids) != 2 {
		t.Fatalf("status shows %d instances of api, want 2: %+v", len(pids), h.sup.Status())
	}

	if err := h.sup.RemoveService(ctx, "api"); err != nil {
		t.Fatalf("RemoveService: %v", err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d of the removed service still runs", pid)
		}
	}
	if st := h.sup.Status(); len(st) != 1 || st[0].Name != "web" || st[0].State != ServiceRunning {
		t.Errorf("status after removing api: %+v, want web alone, running", st)
	}
	if err := h.sup.RemoveService(ctx, "api"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("removing api twice: %v, want ErrUnknownService", err)
	}
	if err := h.stop(t, 15*time.Second); err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := h.sup.AddService(&api, set); !errors.Is(err, ErrNotRunning) {
		t.Errorf("AddService after Run: %v, want ErrNotRunning", err)
	}
}
