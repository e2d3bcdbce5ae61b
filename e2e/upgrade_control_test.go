package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// Once smoothtool upgrade has said the new daemon took over, every call
// reaches the new daemon, although the old one still holds the control
// socket while it finishes a long request.
func TestUpgradeLeavesTheControlSocketToTheNewDaemon(t *testing.T) {
	e := newEnv(t, 1+2)
	e.service("web", "web.test", 1, "")
	in := install(e)
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	old := in.daemonPid()
	slow := make(chan error, 1)
	go func() {
		code, body, err := httpGet(e.proxyAddr(), "web.test", "/slow?ms=8000")
		if err == nil && code != 200 {
			t.Errorf("the long request: %d %s", code, body)
		}
		slow <- err
	}()
	in.waitInFlight(1) // in progress at the old daemon
	if code, out, errOut := in.run("upgrade"); code != 0 {
		t.Fatalf("smoothtool upgrade: exit %d\n%s%s", code, out, errOut)
	}
	now := in.daemonPid()
	if now == old {
		t.Fatalf("the pid file still names the old daemon %d", old)
	}
	// Each call counts while the old daemon still runs after it: a loaded
	// machine may take the long request's 8 s for fewer than all 20.
	whileOld := 0
	for i := range 20 {
		code, out, errOut := in.run("status", "--json")
		if code != 0 {
			t.Fatalf("status #%d: exit %d\n%s", i, code, errOut)
		}
		var st struct{ Pid int }
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status #%d: %v\n%s", i, err, out)
		}
		if st.Pid != now {
			t.Errorf("status #%d after the upgrade answered by pid %d, want the new daemon %d", i, st.Pid, now)
		}
		if alive(old) {
			whileOld++
		}
	}
	t.Logf("%d of the 20 status calls were answered while the old daemon still ran", whileOld)
	if whileOld == 0 {
		t.Errorf("the old daemon %d exited before the long request ended: the test proves nothing", old)
	}
	if err := <-slow; err != nil {
		t.Errorf("the long request: %v", err)
	}
	waitGone(t, old, 30*time.Second)
}
