package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// After an upgrade, the old process finishing a TLS WebSocket (its
// state is not passed; here one of service b) is still the instances'
// parent, and sees them exit: one the new process stops in a rolling
// restart meanwhile (of service a) is not
// the old one's to report lost, nor to kill the process group of (a
// worker finishing its requests). The soak found both: a WARN "exited"
// from the old process at each rollout after an upgrade.
func TestARolloutWhileTheOldProcessDrainsIsNoLossToIt(t *testing.T) {
	h := newHTTPSEnv(t, 10)
	h.tlsService("a", "a.test", 1, "")
	h.tlsService("b", "b.test", 1, "") // its WebSocket holds the old process
	d := h.startDaemon()
	// The daemon the upgrade starts is not d's child once d exits: stop
	// it (and its instances) before d's cleanup waits for its output.
	t.Cleanup(func() { h.tool("stop") })
	h.waitHTTPS(d, "a.test")
	h.waitHTTPS(d, "b.test")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("wss://b.test:%d/ws", h.httpsPort)
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: h.client(false, nil)})
	if err != nil {
		t.Fatalf("WebSocket to %s: %v", url, err)
	}
	defer ws.CloseNow()

	if code, out, errOut := h.tool("upgrade"); code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := h.tool("restart", "a"); code != 0 {
		t.Fatalf("restart: exit %d\n%s%s", code, out, errOut)
	}
	time.Sleep(500 * time.Millisecond) // the old process reaps the instance the rollout stopped
	if !strings.Contains(d.out.String(), "draining and exiting without stopping instances") {
		t.Fatalf("no upgrade in the log:\n%s", tail(d.out.String(), 3000))
	}
	if lost := regexp.MustCompile(`level=WARN msg="a#0 pid [0-9]+ exited`).FindString(d.out.String()); lost != "" {
		t.Errorf("an instance the rollout stopped was reported lost: %s\n%s", lost, tail(d.out.String(), 3000))
	}
}
