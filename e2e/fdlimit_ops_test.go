package e2e

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOutOfDescriptorsTheOperatorStillActs: with every descriptor the
// daemon may open held by idle keep-alive connections, smoothtool is
// still answered (the control socket's accept makes room as the proxy's
// does), a rolling restart still starts its instance (its exec, its
// probes), and the admin listener answers: each closes idle connections
// to make room. Before, smoothtool waited in the control socket's listen
// queue until an idle connection timed out.
func TestOutOfDescriptorsTheOperatorStillActs(t *testing.T) {
	e := newEnv(t, 8)
	admin := e.withAdmin()
	e.service("web", "web.test", 1, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	before, _ := getPid(e.proxyAddr(), "web.test")

	limit := uint64(openFDs(t, d.pid()) + 60)
	if err := unix.Prlimit(d.pid(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	dial := func() (net.Conn, error) { return net.DialTimeout("tcp", e.proxyAddr(), 5*time.Second) }
	idle := openClients(t, dial, int(limit)-openFDs(t, d.pid()))
	defer func() {
		for _, c := range idle {
			c.nc.Close()
		}
	}()
	time.Sleep(3500 * time.Millisecond) // parked: idle for the shed to take
	if n := openFDs(t, d.pid()); uint64(n) < limit-1 {
		t.Fatalf("the daemon holds %d descriptors, want its limit %d (less one)", n, limit)
	}

	for _, args := range [][]string{{"restart", "web"}, {"status"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin.smoothtool, append(args, "-config", e.config)...)
		cmd.Dir = e.dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("smoothtool %s with the daemon out of descriptors: %v\n%s\n%s", strings.Join(args, " "), err, out, tail(d.out.String(), 3000))
		}
	}
	after, err := getPid(e.proxyAddr(), "web.test")
	if err != nil || after == before {
		t.Errorf("after the restart: instance pid %d (before %d), %v", after, before, err)
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("the admin listener with the daemon out of descriptors: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics: %s", resp.Status)
	}
	if shed := sum(scrape(t, admin), `^smoothserve_connections_shed_total$`); shed == 0 {
		t.Error("smoothserve_connections_shed_total is 0: no idle connection was closed")
	}
	if out := d.out.String(); strings.Contains(out, "level=ERROR") {
		t.Errorf("an error was logged:\n%s", tail(out, 3000))
	}
}
