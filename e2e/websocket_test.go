package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient is one WebSocket to the demo's /ws through the proxy, read, as a
// browser does, until it ends.
type wsClient struct {
	pid   int // the instance it reached (the upgrade's Demo-Pid)
	c     *websocket.Conn
	ended chan error // what its reads ended with; one value
}

// dialWS opens a WebSocket to host's /ws through the proxy, checks that it
// echoes, and then reads it until it ends. It is closed at the end of the
// test.
func dialWS(t *testing.T, e *env, host string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+e.proxyAddr()+"/ws", &websocket.DialOptions{Host: host})
	if err != nil {
		t.Fatalf("WebSocket to %s/ws through the proxy: %v", host, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	pid, err := strconv.Atoi(resp.Header.Get("Demo-Pid"))
	if err != nil {
		t.Fatalf("WebSocket upgrade: Demo-Pid %q: %v", resp.Header.Get("Demo-Pid"), err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatalf("WebSocket to pid %d: write: %v", pid, err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "echo: hi" {
		t.Fatalf("WebSocket to pid %d: read %q %v, want \"echo: hi\"", pid, msg, err)
	}
	ws := &wsClient{pid: pid, c: c, ended: make(chan error, 1)}
	// Reading answers the instance's close frame; CloseNow in the cleanup
	// ends the reads of a WebSocket the test left open.
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				ws.ended <- err
				return
			}
		}
	}()
	return ws
}

// wsOnEveryInstance opens WebSockets until each of pids has one, and returns
// one per instance. The proxy sends each to the instance with the fewest
// requests in flight: under load, the same one for a while, so a WebSocket
// that reached an instance that has one already is closed, and the next is
// opened a moment later.
func wsOnEveryInstance(t *testing.T, e *env, host string, pids map[int]bool) []*wsClient {
	t.Helper()
	var clients []*wsClient
	covered := map[int]bool{}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ws := dialWS(t, e, host)
		switch {
		case !pids[ws.pid]:
			t.Fatalf("WebSocket reached pid %d, not one of the instances %v", ws.pid, pids)
		case covered[ws.pid]:
			ws.c.CloseNow()
			continue
		}
		clients = append(clients, ws)
		covered[ws.pid] = true
		if len(covered) == len(pids) {
			return clients
		}
	}
	t.Fatalf("within 5s, WebSockets reached only the instances %v of %v", covered, pids)
	return nil
}

// wantGoingAway checks that every client's WebSocket was closed by its
// instance with 1001 and the demo's reason, within the time given.
func wantGoingAway(t *testing.T, clients []*wsClient, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for _, ws := range clients {
		select {
		case err := <-ws.ended:
			if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway || !strings.Contains(err.Error(), "server restarting") {
				t.Errorf("WebSocket to pid %d ended with %v (close status %d), want 1001 \"server restarting\" from the instance", ws.pid, err, code)
			}
		case <-deadline:
			t.Errorf("WebSocket to pid %d still open %v later", ws.pid, within)
			return
		}
	}
}

// TestWebSocketsDoNotHoldARollingRestart: with a WebSocket open on every
// instance, a rolling restart takes about as long as without (it used to
// wait stop_timeout per instance), each WebSocket is closed by its instance
// with 1001 (not cut, 1006), and the requests meanwhile all succeed.
func TestWebSocketsDoNotHoldARollingRestart(t *testing.T) {
	for _, strategy := range []string{"surge", "in_place"} {
		t.Run(strategy, func(t *testing.T) {
			e := newEnv(t, 8)
			e.service("web", "web.test", 3, "restart_strategy: "+strategy+"\nstop_timeout: 30\n")
			d := e.startDaemon()
			d.waitPids(e.proxyAddr(), "web.test", 3, 15*time.Second)

			load := mixedLoad(e, "web.test")
			time.Sleep(300 * time.Millisecond)
			restart := func(what string) time.Duration {
				t.Helper()
				start := time.Now()
				code, out, errOut := e.tool("restart", "web")
				took := time.Since(start)
				if code != 0 {
					load.Stop()
					t.Fatalf("smoothtool restart web (%s): exit %d\n%s%s", what, code, out, errOut)
				}
				t.Logf("restart %s: %v\n%s", what, took.Round(time.Millisecond), strings.TrimSpace(out))
				return took
			}

			without := restart("without WebSockets")
			clients := wsOnEveryInstance(t, e, "web.test", instancePids(d))
			with := restart("with a WebSocket on each instance")
			wantGoingAway(t, clients, 5*time.Second)
			dialWS(t, e, "web.test") // the new instances serve WebSockets

			time.Sleep(300 * time.Millisecond)
			res := load.Stop()
			t.Logf("%s: %d WebSockets; restart %v without, %v with; load: %v", strategy, len(clients),
				without.Round(time.Millisecond), with.Round(time.Millisecond), res)
			// Both take a few seconds at most; the bug this guards against
			// made the second one wait stop_timeout (30 s) per instance. A
			// loaded machine may make either take longer than the other,
			// by seconds, not by 30.
			if with >= without+10*time.Second {
				t.Errorf("restart with WebSockets open took %v, want about the %v of one without (not stop_timeout, 30s, per instance)", with.Round(time.Millisecond), without.Round(time.Millisecond))
			}
			if err := res.Err(); err != nil {
				t.Errorf("requests failed across the rolling restarts (%s): %v", strategy, err)
			}
		})
	}
}

// TestStopClosesWebSocketsWithTheAppsCode: `smoothtool stop NAME` and
// `stop all` with a WebSocket open on each instance stop at once (not after
// stop_timeout): the instances get SIGTERM with their WebSockets open, so
// each client gets the app's 1001 "server restarting", not 1006.
func TestStopClosesWebSocketsWithTheAppsCode(t *testing.T) {
	const stopTimeout = 30 * time.Second
	for _, target := range []string{"web", "all"} {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t, 8)
			e.service("web", "web.test", 3, "stop_timeout: 30\n")
			d := e.startDaemon()
			d.waitPids(e.proxyAddr(), "web.test", 3, 15*time.Second)
			pids := instancePids(d)
			clients := wsOnEveryInstance(t, e, "web.test", pids)

			start := time.Now()
			code, out, errOut := e.tool("stop", target)
			took := time.Since(start)
			if code != 0 {
				t.Fatalf("smoothtool stop %s: exit %d\n%s%s", target, code, out, errOut)
			}
			t.Logf("smoothtool stop %s with %d WebSockets open: %v", target, len(clients), took.Round(time.Millisecond))
			wantGoingAway(t, clients, 5*time.Second)
			if took > stopTimeout/6 {
				t.Errorf("smoothtool stop %s took %v with WebSockets open, want far less than stop_timeout %v", target, took.Round(time.Millisecond), stopTimeout)
			}
			if target == "all" {
				if code := d.wait(5 * time.Second); code != 0 {
					t.Errorf("smoothserve exited %d after smoothtool stop all, want 0", code)
				}
			}
			for pid := range pids {
				if alive(pid) {
					t.Errorf("instance pid %d still running after smoothtool stop %s", pid, target)
				}
			}
		})
	}
}
