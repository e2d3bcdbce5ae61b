package e2e

import (
	"strings"
	"testing"
)

// A service the operator stopped stays stopped through an upgrade (as a
// stopped pm2 process or systemd unit does): the new daemon does not start
// it, it answers 503, and `start NAME` starts it.
func TestAStoppedServiceStaysStoppedThroughAnUpgrade(t *testing.T) {
	e := newEnv(t, 12)
	e.service("alpha", "alpha.test", 1, "")
	e.service("beta", "beta.test", 1, "")
	e.killBackgroundAtCleanup()
	// After the upgrade alpha's instance is no daemon's child: a stop
	// ends it (before the kill above, cleanups running last first).
	t.Cleanup(func() { e.tool("stop", "all") })
	if code, out, errOut := e.tool("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := e.tool("stop", "beta"); code != 0 {
		t.Fatalf("smoothtool stop beta: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := e.tool("upgrade"); code != 0 {
		t.Fatalf("smoothtool upgrade: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := e.tool("status")
	if code != 0 || !strings.Contains(out, "beta  stopped") || !strings.Contains(out, "alpha  running") {
		t.Fatalf("status after the upgrade: exit %d, want beta stopped and alpha running\n%s%s", code, out, errOut)
	}
	if status, _, _, err := getHeaders(e.proxyAddr(), "beta.test"); err != nil || status != 503 {
		t.Errorf("GET beta.test after the upgrade: %d, %v; want 503", status, err)
	}
	if code, out, errOut := e.tool("start", "beta"); code != 0 || !strings.Contains(out, "beta  running") {
		t.Fatalf("smoothtool start beta: exit %d\n%s%s", code, out, errOut)
	}
	if status, body, err := httpGet(e.proxyAddr(), "beta.test", "/"); err != nil || status != 200 {
		t.Errorf("GET beta.test after start beta: %d %q, %v", status, body, err)
	}
}
