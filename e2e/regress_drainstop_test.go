package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Regression (review): while smoothserve stops (a request in flight keeps the proxy's
// stop going), /health says stopping, but the agent port is closed at the
// same moment (the host component's stop cancels it right after
// setStopping), so HAProxy never hears the "maint" that agentState
// promises for a stopping smoothserve (agent.go: "maint while smoothserve
// stops"); an agent-check-only backend keeps the host in rotation (HAProxy
// ignores an agent it cannot reach) until the proxy's ports close.
func TestAgentSaysMaintWhileStopping(t *testing.T) {
	in, admin, agentAddr := startDrainable(t, 1, "200ms")
	if code, out, errOut := in.run("drain"); code != 0 {
		t.Fatalf("drain: exit %d\n%s%s", code, out, errOut)
	}
	slow := make(chan error, 1)
	go func() {
		_, _, err := httpGet(in.proxyAddr(), "web.test", "/slow?ms=4000")
		slow <- err
	}()
	in.waitInFlight(1) // the stop waits for it
	stopped := make(chan string, 1)
	go func() {
		code, out, errOut := in.run("stop")
		stopped <- fmt.Sprintf("exit %d %s%s", code, out, errOut)
	}()
	deadline := time.Now().Add(3 * time.Second)
	for {
		code, body, err := httpGet(admin, "", "/health")
		if err == nil && code == 503 && strings.TrimSpace(body) == "stopping" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health never said stopping: %d %q %v", code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	agent := "?"
	// The agent answers at once; the bounds are for a loaded machine.
	if c, err := net.DialTimeout("tcp", agentAddr, 5*time.Second); err != nil {
		agent = "dial: " + err.Error()
	} else {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		agent = fmt.Sprintf("%q (%v)", b, err)
	}

	if err := <-slow; err != nil {
		t.Logf("the slow request: %v", err)
	}
	t.Logf("stop: %s", <-stopped)
	if agent != `"maint\n" (<nil>)` {
		t.Errorf("agent port while smoothserve stops: %s, want maint", agent)
	}
}
