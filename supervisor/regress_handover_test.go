package supervisor

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// acceptedUnanswered reports whether a connection to 127.0.0.1:port is
// established on the listening side (a health check waiting for a stopped
// instance to accept and answer it).
func acceptedUnanswered(port int) bool {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == local && f[3] == "01" {
			return true
		}
	}
	return false
}

// Freeze pauses the health checks, but one may be in flight: its report,
// once frozen, is dropped, so that the old process keeps the instance as
// the state file recorded it at Freeze ("ready"), and the new process goes
// on from there — its own health checks take the hung instance out.
func TestHealthReportAfterFreezeIsDropped(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	svc := cfg.Services[0]
	svc.HealthCheck = "/healthz"
	svc.HealthCheckInterval = time.Second // a check waits up to 1 s
	svc.HealthCheckFails = 1
	svc.StartTimeout = 3 * time.Second
	a, stateFile := keeping(t, cfg)
	hung := a.instances()[0]
	if err := syscall.Kill(hung.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(hung.Pid, syscall.SIGCONT)
	eventually(t, 3*time.Second, "a health check of the stopped instance in flight", func() bool {
		return acceptedUnanswered(hung.Port)
	})
	if err := a.sup.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	time.Sleep(2 * time.Second) // the check in flight times out and reports
	if st := a.instances()[0].State; st != StateReady || !slices.Contains(a.inRotation(), 0) {
		t.Fatalf("frozen old process: slot 0 %s, rotation %v; want it as Freeze recorded it", st, a.inRotation())
	}
	for _, in := range readState(t, stateFile).Instances {
		if in.State != StateReady.String() {
			t.Fatalf("state file: %s recorded %q", in, in.State)
		}
	}
	a.sup.Detach()
	if err := a.stop(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	prior := readState(t, stateFile)
	b := start(t, cfg, func(s *Supervisor) { s.Handoff(stateFile, prior, true) })
	eventually(t, 5*time.Second, "the new process's checks take the hung instance out", func() bool {
		return !slices.Contains(b.inRotation(), 0) && slices.Contains(b.inRotation(), 1)
	})
}
