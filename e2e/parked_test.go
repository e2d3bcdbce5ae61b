package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
)

// parkedConns is how many client connections TestParkedConnections... and
// TestParkedTLSConnections... keep idle between their requests:
// SMOOTHSERVE_PARKED_CONNS, or 200. (At 8,000
// it found two faults, since fixed: connections not passed at an upgrade,
// and POSTs meeting the demo instances' idle close. Each has a test of its
// own in its package. Node's instances, closing idle connections after
// 200 ms by their event loop's clock, which lags under a burst of 8,000
// connections, still closed one under a POST now and then: 3 and 8 of
// 52,000–60,000 requests failed so; hence 1 s below.)
func parkedConns(t *testing.T) int {
	v := os.Getenv("SMOOTHSERVE_PARKED_CONNS")
	if v == "" {
		return 200
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("SMOOTHSERVE_PARKED_CONNS=%q: want a count of connections", v)
	}
	return n
}

// TestParkedConnectionsGoOnThroughRestartsAndUpgrades: client connections
// that idle 2.5–4 s between requests — the proxy parks a connection idle
// for 1–2 s: no goroutine, no buffers, its descriptor in an epoll set —
// beside a busy load, through rolling restarts and upgrades by SIGHUP and
// by smoothtool, with instances that close their idle pooled connections
// after 200 ms. No request fails and no connection is closed: each
// upgrade passes every parked connection to the new daemon, which parks it
// again.
//
// The instances are the demo, and Node.js's http module (examples/node);
// Node's close after 1 s: its idle timer runs on its event loop's clock,
// which lags under load, and 200 ms would leave too little room between
// it and the 100 ms under which the proxy reuses a connection for a POST
// (bench/NOTES.md). The proxy's pooled connections still idle past it in
// every pause of the idling load.
func TestParkedConnectionsGoOnThroughRestartsAndUpgrades(t *testing.T) {
	t.Run("demo", func(t *testing.T) {
		in, admin := startInstalledWithAdmin(t, closesIdleConns)
		parkedThroughRestartsAndUpgrades(t, in, admin, "")
	})
	t.Run("node", func(t *testing.T) {
		needNode(t)
		e := newEnv(t, 8)
		admin := e.withAdmin()
		copyFile(t, filepath.Join("..", "examples", "node", "server.js"), filepath.Join(e.dir, "app", "node", "server.js"))
		e.serviceOf("./app/node/server.js", "web", "web.test", 3, "args: [\"-port={port}\", \"-keep-alive-timeout=1s\", \"-keep-alive-buffer=0s\"]\n")
		in := install(e)
		if code, out, errOut := in.run("start"); code != 0 {
			t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
		}
		parkedThroughRestartsAndUpgrades(t, in, admin, "hello from node")
	})
}

// parkedThroughRestartsAndUpgrades is the test on in's service web.test,
// whose instances answer a GET with hello; admin is the daemon's
// AdminAddr.
func parkedThroughRestartsAndUpgrades(t *testing.T, in *installed, admin, hello string) {
	parkedConns := parkedConns(t)
	cfg := mixedConfig(in.env, "web.test")
	cfg.Hello = hello
	busy := loadclient.Start(context.Background(), cfg)
	idle := loadclient.Start(context.Background(), loadclient.Config{
		Addr: in.proxyAddr(), Host: "web.test", Hello: hello, Conns: parkedConns,
		PauseFrom: 2500 * time.Millisecond, Pause: 4 * time.Second,
		Mix:          []loadclient.Kind{loadclient.Get, loadclient.Get, loadclient.Post, loadclient.Stream},
		PostMaxBytes: 8 << 10, StreamLines: 3, StreamMS: 30,
	})
	time.Sleep(time.Second)
	upgrades := 0
	var parkedAt []float64 // parked connections as each step began
	for i, step := range []string{"restart", "sighup", "upgrade", "restart", "sighup", "upgrade"} {
		parkedAt = append(parkedAt, waitParked(t, admin, parkedConns/5))
		old := in.daemonPid()
		if err := takeStep(in, step); err != nil {
			busy.Stop()
			idle.Stop()
			t.Fatalf("step %d: %v", i+1, err)
		}
		if step != "restart" {
			upgrades++
			waitGone(t, old, 10*time.Second)
		}
		time.Sleep(2 * time.Second)
	}
	res, ires := busy.Stop(), idle.Stop()
	t.Logf("busy load: %v, slowest %v; idling load: %v, slowest %v; parked as each step began: %v", res, res.MaxLatency, ires, ires.MaxLatency, parkedAt)
	// Each connection went on through the steps: over the 14 s or more
	// they took, with pauses of 4 s at most, it made 4 requests at least.
	checkParkedRun(t, parkedAt, parkedConns, res, ires, 4)
	checkTookOver(t, in, upgrades, parkedConns)
}

// checkParkedRun checks a run of the busy and the idling load: a fifth or
// more of the parkedConns idling connections parked as each step began
// (parkedAt, in each daemon), no request failed, no connection closed,
// and each idling connection made perConn requests or more.
func checkParkedRun(t *testing.T, parkedAt []float64, parkedConns int, res, ires *loadclient.Result, perConn int) {
	t.Helper()
	for i, n := range parkedAt {
		if n < float64(parkedConns/5) {
			t.Errorf("step %d began with %v connections parked; want a fifth or more of the %d idling ones", i+1, n, parkedConns)
		}
	}
	if err := res.Err(); err != nil {
		t.Errorf("busy load: %v", err)
	}
	if err := ires.Err(); err != nil {
		t.Errorf("load idling between requests: %v", err)
	}
	if n := res.Reconnects + ires.Reconnects; n != 0 {
		t.Errorf("the clients reconnected %d times; want 0 (no connection closed, each passed on at an upgrade)", n)
	}
	if min := int64(parkedConns * perConn); ires.Total < min {
		t.Errorf("the idling load made %d requests; want at least %d", ires.Total, min)
	}
}

// waitParked waits, up to 15 s, until want connections are parked, and
// returns how many are. With pauses of 2.5–4 s and parking after 1–2 s,
// about half the idling connections are parked at any moment; at the
// start they first have their first request (thousands can take
// seconds), after an upgrade they park again in the new daemon.
func waitParked(t *testing.T, admin string, want int) float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := sum(scrape(t, admin), `^smoothserve_parked_connections$`)
		if n >= float64(want) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// takeStep restarts web ("restart") or upgrades smoothserve by SIGHUP
// ("sighup") or by smoothtool ("upgrade").
func takeStep(in *installed, step string) error {
	var code int
	var out, errOut string
	switch step {
	case "restart":
		code, out, errOut = in.run("restart", "web")
	case "sighup":
		_, err := in.sighup()
		return err
	case "upgrade":
		code, out, errOut = in.run("upgrade")
	}
	if code != 0 {
		return fmt.Errorf("smoothtool %s: exit %d\n%s%s", step, code, out, errOut)
	}
	return nil
}

// checkTookOver checks that each of the upgrades took over every client
// connection, at least min of them, the parked ones included (a connection
// whose stream was being answered counts as a stream).
func checkTookOver(t *testing.T, in *installed, upgrades, min int) {
	t.Helper()
	logText, err := os.ReadFile(filepath.Join(in.dir, "logs", "smoothserve.log"))
	if err != nil {
		t.Fatal(err)
	}
	tookOver := regexp.MustCompile(`took over the previous smoothserve's connections" clients=(\d+) tunnels=\d+ streams=(\d+)`).FindAllSubmatch(logText, -1)
	if len(tookOver) != upgrades {
		t.Fatalf("the daemon log says %d times what it took over; want %d (one per upgrade)", len(tookOver), upgrades)
	}
	for i, m := range tookOver {
		clients, _ := strconv.Atoi(string(m[1]))
		streams, _ := strconv.Atoi(string(m[2]))
		if clients+streams < min {
			t.Errorf("upgrade %d took over %d client connections and %d streams; want at least the %d idling ones", i+1, clients, streams, min)
		}
	}
}

// TestParkedTLSConnectionsGoOnThroughRestarts: HTTPS (HTTP/1.1) client
// connections that idle 2.5–4 s between requests, so are parked with
// their TLS state, beside a busy HTTPS load, through rolling restarts of
// instances that close their idle pooled connections after 200 ms: no
// request fails and no connection is closed. (A TLS connection is not
// passed at an upgrade: TestHTTPSLoadThroughRestartsAndUpgrades.)
func TestParkedTLSConnectionsGoOnThroughRestarts(t *testing.T) {
	h := newHTTPSEnv(t, 9)
	admin := "127.0.0.1:" + strconv.Itoa(h.ports.next())
	h.writeMain(fmt.Sprintf("HTTPSPort: %d\nAdminAddr: %s\n", h.httpsPort, admin))
	h.tlsService("web", "web.test", 3, closesIdleConns)
	in := install(h.env)
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	parkedConns := parkedConns(t)
	addr := fmt.Sprintf("127.0.0.1:%d", h.httpsPort)
	var counter tlsCounter
	busy := loadclient.Start(context.Background(), loadclient.Config{
		Addr: addr, Host: "web.test", TLS: counter.config(h.ca), Conns: 8,
		Mix:    []loadclient.Kind{loadclient.Get, loadclient.Get, loadclient.Slow, loadclient.Post, loadclient.Stream},
		SlowMS: 300, PostMaxBytes: 64 << 10, StreamLines: 10, StreamMS: 30,
	})
	idle := loadclient.Start(context.Background(), loadclient.Config{
		Addr: addr, Host: "web.test", TLS: counter.config(h.ca), Conns: parkedConns,
		PauseFrom: 2500 * time.Millisecond, Pause: 4 * time.Second,
		Mix:          []loadclient.Kind{loadclient.Get, loadclient.Get, loadclient.Post, loadclient.Stream},
		PostMaxBytes: 8 << 10, StreamLines: 3, StreamMS: 30,
	})
	time.Sleep(time.Second)
	var parkedAt []float64
	for i := 1; i <= 3; i++ {
		parkedAt = append(parkedAt, waitParked(t, admin, parkedConns/5))
		if err := takeStep(in, "restart"); err != nil {
			busy.Stop()
			idle.Stop()
			t.Fatalf("restart %d: %v", i, err)
		}
		time.Sleep(2 * time.Second)
	}
	res, ires := busy.Stop(), idle.Stop()
	t.Logf("busy HTTPS load: %v; idling HTTPS load: %v, slowest %v; parked as each restart began: %v; TLS handshakes %d full, %d resumed",
		res, ires, ires.MaxLatency, parkedAt, counter.full.Load(), counter.resumed.Load())
	// Over the 10 s or more the restarts took, with pauses of 4 s at
	// most, each idling connection made 3 requests at least.
	checkParkedRun(t, parkedAt, parkedConns, res, ires, 3)
	if n := counter.full.Load() + counter.resumed.Load(); n != int64(parkedConns+8) {
		t.Errorf("%d TLS handshakes; want %d, one a connection", n, parkedConns+8)
	}
}
