package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// persistent is one persistent HTTP/1.1 client connection, no retries.
type persistent struct {
	c  net.Conn
	br *bufio.Reader
}

func dialPersistent(t *testing.T, addr string) *persistent {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &persistent{c: c, br: bufio.NewReader(c)}
}

// get sends GET path with Host and returns the response, its body read.
func (k *persistent) get(host, path string) (*http.Response, string, error) {
	k.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// closedWithin reports whether the server closes the idle connection
// within d.
func (k *persistent) closedWithin(d time.Duration) bool {
	k.c.SetReadDeadline(time.Now().Add(d))
	_, err := k.br.ReadByte()
	return err == io.EOF
}

// health is GET /health on the admin listener: the status and the body.
func health(t *testing.T, admin string) (int, string) {
	t.Helper()
	// No Host a name: a load balancer's check sends none, or an address.
	code, body, err := httpGet(admin, "", "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	return code, strings.TrimSpace(body)
}

// agentSays is what the agent port answers one connection.
func agentSays(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("agent port: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("agent port: %v", err)
	}
	return string(b)
}

// hostState is the host's drain state in smoothtool status --json.
func (in *installed) hostState() string {
	in.t.Helper()
	code, out, errOut := in.run("status", "--json")
	if code != 0 {
		in.t.Fatalf("status --json: exit %d %s%s", code, out, errOut)
	}
	var st struct {
		Host struct {
			State string `json:"state"`
		} `json:"host"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		in.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st.Host.State
}

// startDrainable starts a smoothserve with an admin listener and an agent
// port, DrainDelay delay, and a service web (web.test) of count demo
// instances; it returns it and the admin listener's and agent's addresses.
func startDrainable(t *testing.T, count int, delay string) (in *installed, admin, agent string) {
	t.Helper()
	e := newEnv(t, 8)
	adminPort, agentPort := e.ports.next(), e.ports.next()
	e.writeMain(fmt.Sprintf("AdminAddr: 127.0.0.1:%d\nAgentPort: %d\nDrainDelay: %s\n", adminPort, agentPort, delay))
	e.service("web", "web.test", count, "")
	in = install(e)
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	return in, "127.0.0.1:" + strconv.Itoa(adminPort), "127.0.0.1:" + strconv.Itoa(agentPort)
}

// TestHostDrainAndUndrain: smoothtool drain flips /health and the agent at
// once, serves keep-alive requests as before for DrainDelay, then closes
// connections after their response (and idle ones); drain --wait reports
// the figures; the drain is kept through an upgrade and a restart of the
// daemon; undrain puts everything back.
func TestHostDrainAndUndrain(t *testing.T) {
	in, admin, agentAddr := startDrainable(t, 2, "1s")
	if code, body := health(t, admin); code != 200 || body != "serving" {
		t.Fatalf("/health before the drain: %d %q, want 200 serving", code, body)
	}
	if got := agentSays(t, agentAddr); got != "up ready\n" {
		t.Fatalf("agent before the drain: %q", got)
	}
	busy, idle := dialPersistent(t, in.proxyAddr()), dialPersistent(t, in.proxyAddr())
	for _, k := range []*persistent{busy, idle} {
		if resp, _, err := k.get("web.test", "/"); err != nil || resp.Close {
			t.Fatalf("before the drain: %v, close %v", err, resp != nil && resp.Close)
		}
	}

	began := time.Now()
	if code, out, errOut := in.run("drain"); code != 0 || !strings.Contains(out, "host draining") {
		t.Fatalf("drain: exit %d\n%s%s", code, out, errOut)
	}
	// Within DrainDelay, the balancer still sends requests: served as
	// before, the connection kept. That is judged only if the answer came
	// within DrainDelay of the drain (a loaded machine may take longer to
	// get here, and the answer then rightly closes the connection: the
	// next request goes on a new one).
	resp, _, err := busy.get("web.test", "/")
	if took := time.Since(began); took < time.Second {
		if err != nil || resp.Close {
			t.Fatalf("within DrainDelay: %v, close %v; want kept alive", err, resp != nil && resp.Close)
		}
	} else {
		t.Logf("the request within DrainDelay was answered %v after the drain began: the machine is slow, not checked", took)
		busy = dialPersistent(t, in.proxyAddr())
	}
	// A request in flight when DrainDelay ends is answered, with
	// Connection: close, and its connection closed. It goes at once, on
	// the connection kept, before DrainDelay ends and closes it idle.
	slow := make(chan error, 1)
	go func() {
		resp, body, err := busy.get("web.test", "/slow?ms=1500")
		switch {
		case err != nil:
		case !resp.Close || !strings.HasPrefix(body, "slow 1500ms"):
			err = fmt.Errorf("got close %v, body %q; want the answer with Connection: close", resp.Close, body)
		case !busy.closedWithin(2 * time.Second):
			err = fmt.Errorf("the connection stayed open after its Connection: close response")
		}
		slow <- err
	}()
	if code, body := health(t, admin); code != 503 || body != "draining" {
		t.Fatalf("/health once draining: %d %q, want 503 draining", code, body)
	}
	if got := agentSays(t, agentAddr); got != "drain\n" {
		t.Fatalf("agent once draining: %q, want drain", got)
	}
	if !idle.closedWithin(3 * time.Second) {
		t.Fatal("an idle keep-alive connection was not closed after DrainDelay")
	}
	if d := time.Since(began); d < time.Second {
		t.Errorf("the idle connection was closed %v after the drain, before DrainDelay (1s)", d)
	}
	// A new connection is still served: one request, then closed.
	fresh := dialPersistent(t, in.proxyAddr())
	if resp, _, err := fresh.get("web.test", "/"); err != nil || !resp.Close || !fresh.closedWithin(2*time.Second) {
		t.Fatalf("a new connection after DrainDelay: %v; want one answer with Connection: close, then closed", err)
	}
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight at the end of DrainDelay: %v", err)
	}

	code, out, errOut := in.run("drain", "--wait", "--timeout", "10s")
	if code != 0 || !strings.Contains(out, "host drained (no request in flight)") || !strings.Contains(out, "connections closed") {
		t.Fatalf("drain --wait: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("drain --wait: %s", strings.TrimSpace(out))
	if got := in.hostState(); got != "drained" {
		t.Fatalf("status host state %q, want drained", got)
	}
	if _, out, _ := in.run("status"); !strings.Contains(out, "host drained since") {
		t.Errorf("status does not show the drained host:\n%s", out)
	}
	if v := sum(scrape(t, admin), `^smoothserve_host_state\{state="drained"\}`); v != 1 {
		t.Errorf("smoothserve_host_state{state=drained} = %v, want 1", v)
	}

	if _, _, err := upgradeBySIGHUP(in); err != nil {
		t.Fatal(err)
	}
	if code, body := health(t, admin); code != 503 || in.hostState() != "drained" {
		t.Fatalf("after an upgrade: /health %d %q, host %q; want it still drained", code, body, in.hostState())
	}
	if code, out, errOut := in.run("stop"); code != 0 {
		t.Fatalf("stop: %d %s%s", code, out, errOut)
	}
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("start: %d %s%s", code, out, errOut)
	}
	if code, _ := health(t, admin); code != 503 || in.hostState() != "drained" {
		t.Fatalf("after a restart of the daemon: /health %d, host %q; want it still drained", code, in.hostState())
	}
	if got := agentSays(t, agentAddr); got != "drain\n" {
		t.Fatalf("agent after the restart: %q, want drain", got)
	}

	if code, out, errOut := in.run("undrain"); code != 0 || !strings.Contains(out, "host serving") {
		t.Fatalf("undrain: exit %d\n%s%s", code, out, errOut)
	}
	if code, body := health(t, admin); code != 200 || body != "serving" {
		t.Fatalf("/health after undrain: %d %q", code, body)
	}
	if got := agentSays(t, agentAddr); got != "up ready\n" {
		t.Fatalf("agent after undrain: %q", got)
	}
	k := dialPersistent(t, in.proxyAddr())
	for range 3 {
		if resp, _, err := k.get("web.test", "/"); err != nil || resp.Close {
			t.Fatalf("after undrain: %v, close %v; want kept alive", err, resp != nil && resp.Close)
		}
	}
}

// TestDrainOneInstance: smoothtool drain web#1 takes that instance out of
// rotation (it keeps running), refuses the last one in rotation without
// --force, and undrain puts it back.
func TestDrainOneInstance(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 2, "")
	in := installAndStart(e)
	pids := in.instancesNow()
	code, out, errOut := in.run("drain", "web#1")
	if code != 0 || !strings.Contains(out, "web#1 out of rotation") {
		t.Fatalf("drain web#1: exit %d\n%s%s", code, out, errOut)
	}
	st := instancesOf(t, in.statusJSON())["web"]
	if st[1]["state"] != "drained" || !alive(int(st[1]["pid"].(float64))) {
		t.Fatalf("web#1 after drain: %v", st[1])
	}
	kept := int(st[0]["pid"].(float64))
	for range 20 {
		pid, err := getPid(in.proxyAddr(), "web.test")
		if err != nil || pid != kept {
			t.Fatalf("a request went to pid %d (%v), want only web#0's %d", pid, err, kept)
		}
	}
	code, _, errOut = in.run("drain", "web#0")
	if code != 1 || !strings.Contains(errOut, "web#0 is the last instance of its service in rotation") || !strings.Contains(errOut, "--force") {
		t.Fatalf("drain of the last one: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := in.run("drain", "web#7"); code != 1 || !strings.Contains(errOut, "unknown instance web#7: web has slots 0 to 1") {
		t.Errorf("drain web#7: exit %d, stderr %q", code, errOut)
	}
	if code, out, errOut := in.run("undrain", "web#1"); code != 0 || !strings.Contains(out, "web#1 back in rotation") {
		t.Fatalf("undrain web#1: exit %d\n%s%s", code, out, errOut)
	}
	seen := map[int]bool{}
	for range 40 {
		if pid, err := getPid(in.proxyAddr(), "web.test"); err == nil {
			seen[pid] = true
		}
	}
	if len(seen) != 2 || len(in.instancesNow()) != len(pids) {
		t.Errorf("after undrain, pids answering %v, ready %v; want both", seen, in.instancesNow())
	}
}
