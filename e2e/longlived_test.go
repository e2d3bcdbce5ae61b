package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The connections that outlive a request: WebSockets and streamed
// responses go on through upgrades of smoothserve, a client that leaves a
// stream is seen by the instance, and a stop lets the instances close
// their WebSockets themselves.

// echoClient is a WebSocket to the demo's /ws that sends "<id>-<n>" every
// interval and reads its echo, "echo: <id>-<n>", before the next: any echo
// lost, repeated or out of order stops it with err. Its goroutine never
// touches t; the fields are read once done is closed.
type echoClient struct {
	id, pid int
	c       *websocket.Conn
	stop    chan struct{} // closed: send no more
	done    chan struct{} // closed when run has returned

	echoed int // echoes received, all in order
	maxLag time.Duration
	err    error // what stopped it, if anything went wrong
}

// openEchoClient dials host's /ws through the proxy at addr.
func openEchoClient(t *testing.T, addr, host string, id int) *echoClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Host: host})
	if err != nil {
		t.Fatalf("WebSocket %d to %s/ws through the proxy: %v", id, host, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	pid, err := strconv.Atoi(resp.Header.Get("Demo-Pid"))
	if err != nil {
		t.Fatalf("WebSocket %d: Demo-Pid %q: %v", id, resp.Header.Get("Demo-Pid"), err)
	}
	return &echoClient{id: id, pid: pid, c: c, stop: make(chan struct{}), done: make(chan struct{})}
}

// run sends and checks a message every interval until stop; with every 0,
// back to back, so that one is on its way whenever the tunnel is passed.
func (ec *echoClient) run(every time.Duration) {
	defer close(ec.done)
	closed := make(chan time.Time)
	close(closed)
	var next <-chan time.Time = closed
	if every > 0 {
		tick := time.NewTicker(every)
		defer tick.Stop()
		next = tick.C
	}
	for n := 1; ; n++ {
		msg := fmt.Sprintf("%d-%d", ec.id, n)
		sent := time.Now()
		// An echo 5 s late is lost (coder/websocket then closes it).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := ec.c.Write(ctx, websocket.MessageText, []byte(msg))
		var got []byte
		if err == nil {
			_, got, err = ec.c.Read(ctx)
		}
		cancel()
		switch {
		case err != nil:
			ec.err = fmt.Errorf("message %d, sent at %s: %w", n, sent.Format("15:04:05.000"), err)
			return
		case string(got) != "echo: "+msg:
			ec.err = fmt.Errorf("the echo of message %d, sent at %s, is %q", n, sent.Format("15:04:05.000"), got)
			return
		}
		ec.echoed, ec.maxLag = n, max(ec.maxLag, time.Since(sent))
		select {
		case <-ec.stop:
			return
		case <-next:
		}
	}
}

// finish stops it and closes the WebSocket with 1000 (the close handshake
// goes through the proxy too). It returns how many echoes came back, the
// slowest, and what went wrong.
func (ec *echoClient) finish() (echoed int, maxLag time.Duration, err error) {
	close(ec.stop)
	select {
	case <-ec.done:
	case <-time.After(6 * time.Second):
		return 0, 0, fmt.Errorf("still sending or waiting for an echo 6s after it was stopped")
	}
	if err = ec.err; err == nil {
		if err = ec.c.Close(websocket.StatusNormalClosure, "test done"); err != nil {
			err = fmt.Errorf("closing it with 1000 after all the echoes: %w", err)
		}
	}
	return ec.echoed, ec.maxLag, err
}

// onlyTunnelsTo waits (up to 3 s) until the instances on ports hold exactly
// want established connections, and returns them. The instances close a
// keep-alive connection idle for 200 ms (closesIdleConns): once the health
// checks' and the proxy's pooled connections are gone, what is left are
// the WebSockets' tunnels and the streams.
func onlyTunnelsTo(t *testing.T, ports []int, want int) map[string]bool {
	t.Helper()
	var set map[string]bool
	if !waitUntil(3*time.Second, func() bool { set = establishedTo(t, ports); return len(set) == want }) {
		t.Fatalf("the instances on %v hold %d established connections after 3s, want %d: %v", ports, len(set), want, slices.Sorted(maps.Keys(set)))
	}
	return set
}

// upgradeBySIGHUP sends SIGHUP to in's daemon and waits until the pid file
// names a new daemon (ready) and the old one has exited (exited); both are
// counted from the signal.
func upgradeBySIGHUP(in *installed) (ready, exited time.Duration, err error) {
	old := in.daemonPid()
	start := time.Now()
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		return 0, 0, fmt.Errorf("SIGHUP to smoothserve pid %d: %w", old, err)
	}
	newPid := 0
	if !waitUntil(15*time.Second, func() bool { newPid = in.daemonPid(); return newPid != old && newPid != 0 }) {
		return 0, 0, fmt.Errorf("the pid file still names %d 15s after SIGHUP: no new daemon ready", old)
	}
	ready = time.Since(start)
	if !waitUntil(10*time.Second, func() bool { return !alive(old) }) {
		return ready, 0, fmt.Errorf("the old smoothserve (pid %d) still runs 10s after SIGHUP, its successor %d ready after %v: it holds connections it should have passed on",
			old, newPid, ready.Round(time.Millisecond))
	}
	return ready, time.Since(start), nil
}

// TestWebSocketsStayOpenThroughFiveUpgrades: 20 WebSockets echo a message
// every 100 ms, and 2 more back to back (a message or its echo is on its
// way at any moment), through 5 upgrades of smoothserve one after another;
// none is closed, every echo arrives in order, and the instances keep
// their processes and their side of each WebSocket (passed on, not
// reopened).
func TestWebSocketsStayOpenThroughFiveUpgrades(t *testing.T) {
	const clients, busy, upgrades = 20, 2, 5
	in := startInstalled(t, "", closesIdleConns)
	instances := in.instancesNow()
	if len(instances) != 3 {
		t.Fatalf("ready instances: %v, want 3", instances)
	}
	ports := slices.Sorted(maps.Keys(instances))
	var ws []*echoClient
	perPid := map[int]int{}
	for i := 1; i <= clients+busy; i++ {
		ec := openEchoClient(t, in.proxyAddr(), "web.test", i)
		if !slices.Contains(slices.Collect(maps.Values(instances)), ec.pid) {
			t.Fatalf("WebSocket %d reached pid %d, not one of the instances %v", i, ec.pid, instances)
		}
		perPid[ec.pid]++
		ws = append(ws, ec)
		every := 100 * time.Millisecond
		if i > clients {
			every = 0 // back to back
		}
		go ec.run(every)
	}
	before := onlyTunnelsTo(t, ports, clients+busy)
	time.Sleep(500 * time.Millisecond)
	var took []string
	for i := 1; i <= upgrades && !t.Failed(); i++ {
		ready, exited, err := upgradeBySIGHUP(in)
		if err != nil {
			t.Errorf("upgrade %d of %d: %v", i, upgrades, err)
			break
		}
		took = append(took, fmt.Sprintf("ready %v, old gone %v", ready.Round(time.Millisecond), exited.Round(time.Millisecond)))
		time.Sleep(300 * time.Millisecond) // messages go on with the new daemon alone
	}
	time.Sleep(time.Second)
	after := establishedTo(t, ports)
	var counts []string
	for _, ec := range ws {
		echoed, lag, err := ec.finish()
		counts = append(counts, fmt.Sprintf("%d:%d (slowest %v)", ec.id, echoed, lag.Round(time.Millisecond)))
		if err != nil {
			t.Errorf("WebSocket %d (to pid %d), after %d echoes: %v", ec.id, ec.pid, echoed, err)
		}
	}
	t.Logf("%d WebSockets on the instances %v; upgrades: %s", clients+busy, perPid, strings.Join(took, "; "))
	t.Logf("echoes per WebSocket (%d..%d back to back): %s", clients+1, clients+busy, strings.Join(counts, ", "))
	if got := in.instancesNow(); !maps.Equal(got, instances) {
		t.Errorf("instances (port: pid) after the upgrades: %v, want the same %v", got, instances)
	}
	var gone []string
	for k := range before {
		if !after[k] {
			gone = append(gone, k)
		}
	}
	if len(gone) > 0 {
		t.Errorf("%d of the %d WebSockets' connections on the instances' side (instance port <- proxy port) are gone after the upgrades: %v; the instances now hold %v",
			len(gone), clients+busy, gone, slices.Sorted(maps.Keys(after)))
	}
}

// TestClientLeavingMidStreamIsSeenByTheInstance: a client that closes its
// connection in the middle of a stream makes the proxy close its
// connection to the instance at once, so that the instance stops writing.
func TestClientLeavingMidStreamIsSeenByTheInstance(t *testing.T) {
	e := newEnv(t, 4)
	ports := []int{e.service("web", "web.test", 1, closesIdleConns)}
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	onlyTunnelsTo(t, ports, 0) // the pooled connections closed: none left but the stream's
	c, br := dialGet(t, e.proxyAddr(), "/events?n=1000&ms=100", 0)
	if status, h, err := readHead(br); err != nil || status != 200 || h.Get("Transfer-Encoding") != "chunked" {
		t.Fatalf("/events: status %d, header %v, %v; want 200, chunked", status, h, err)
	}
	var sse sseReader
	if err := readChunks(br, func(b []byte) bool { return sse.add(b) && sse.count.Load() < 3 }); err != errStopped {
		t.Fatalf("reading 3 events: %v", err)
	}
	stream := onlyTunnelsTo(t, ports, 1)
	c.Close()
	closed := time.Now()
	// At once, that is: the stream would go on for 100 s; 5 s leave a
	// loaded machine room.
	if !waitUntil(5*time.Second, func() bool { return len(establishedTo(t, ports)) == 0 }) {
		t.Fatalf("5s after the client closed its connection mid-stream, the instance still holds %v (the stream's was %v): the proxy did not close its side",
			slices.Sorted(maps.Keys(establishedTo(t, ports))), slices.Sorted(maps.Keys(stream)))
	}
	t.Logf("the instance's connection %v closed %v after the client's", slices.Sorted(maps.Keys(stream)), time.Since(closed).Round(time.Millisecond))
}
