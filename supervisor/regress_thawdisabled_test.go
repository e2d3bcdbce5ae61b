package supervisor

import (
	"testing"
	"time"
)

// A failed upgrade's abort calls Thaw, which calls into every service of
// the list, disabled ones too: a disabled service has no run goroutine,
// so sv.call blocks for ever. The upgrade never returns (the Upgrader
// stays busy: every later upgrade is ErrBusy), the services after it in
// the list stay frozen, and the state file is never written again.
func TestRegressThawWithADisabledService(t *testing.T) {
	cfg := testConfig(t, 1, "normal")
	off := *testConfig(t, 1, "normal").Services[0]
	off.Name, off.Enabled = "off", false
	web2 := *testConfig(t, 1, "normal").Services[0]
	web2.Name = "web2"
	cfg.Services = append(cfg.Services, &off, &web2)
	h := start(t, cfg, func(s *Supervisor) { s.Handoff(cfg.Dir+"/state.json", nil, false) })
	awaitReady(t, h, 10*time.Second)
	if err := h.sup.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	thawed := make(chan struct{})
	go func() { h.sup.Thaw(); close(thawed) }()
	select {
	case <-thawed:
	case <-time.After(3 * time.Second):
		t.Errorf("Thaw has not returned after 3 s (blocked on the disabled service)")
	}
}
