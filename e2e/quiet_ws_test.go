package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestQuietWebSocketsAreParkedThroughUpgrades: WebSockets quiet both ways
// for a few seconds are parked by the daemon (smoothserve_parked_connections
// counts them: no goroutine, no buffer), passed as they are at each
// upgrade, and parked again in the new daemon; every one then carries a
// message each way, and the instances keep their side of each (passed,
// not reopened).
func TestQuietWebSocketsAreParkedThroughUpgrades(t *testing.T) {
	const clients, upgrades = 30, 2
	in, admin := startInstalledWithAdmin(t, closesIdleConns)
	instances := in.instancesNow()
	ports := slices.Sorted(maps.Keys(instances))
	var ws []*echoClient
	for i := 1; i <= clients; i++ {
		ec := openEchoClient(t, in.proxyAddr(), "web.test", i)
		echoOnce(t, ec, 0)
		ws = append(ws, ec)
	}
	before := onlyTunnelsTo(t, ports, clients)
	for i := 0; i <= upgrades; i++ {
		if n := waitParked(t, admin, clients); n < clients {
			t.Fatalf("after %d upgrades: %v connections parked, want the %d quiet WebSockets", i, n, clients)
		}
		if i == upgrades {
			break
		}
		if _, _, err := upgradeBySIGHUP(in); err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
	}
	for _, ec := range ws {
		echoOnce(t, ec, 1)
	}
	if after := establishedTo(t, ports); !maps.Equal(after, before) {
		t.Errorf("the instances' side of the WebSockets: %v after the upgrades, want the same %v", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
	}
	if got := in.instancesNow(); !maps.Equal(got, instances) {
		t.Errorf("instances (port: pid) after the upgrades: %v, want the same %v", got, instances)
	}
}

// echoOnce sends "<id>-q<n>" on ec and reads its echo.
func echoOnce(t *testing.T, ec *echoClient, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := fmt.Sprintf("%d-q%d", ec.id, n)
	if err := ec.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("WebSocket %d, message %q: %v", ec.id, msg, err)
	}
	_, got, err := ec.c.Read(ctx)
	if err != nil || string(got) != "echo: "+msg {
		t.Fatalf("WebSocket %d, the echo of %q: %q %v", ec.id, msg, got, err)
	}
}
