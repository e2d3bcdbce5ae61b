package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/syncbuf"
)

// fleetHAProxyConfig is the example's haproxy.cfg, which the test runs as
// it is: its addresses, ports and check interval come from FLEET_*
// variables, which the file sets only where the environment does not.
var fleetHAProxyConfig = filepath.Join("..", "examples", "fleet", "haproxy.cfg")

// fleetCheckInter is the test's HAProxy check interval (fall 2, rise 2):
// a drained host is DOWN within about a second, well inside
// fleetDrainDelay.
const fleetCheckInter = "500ms"

// haproxyLB is a running HAProxy in front of the fleet.
type haproxyLB struct {
	t        *testing.T
	cmd      *exec.Cmd
	out      *syncbuf.Buffer
	done     chan struct{}
	addr     string // the frontend's address, where the load goes
	statsURL string // the stats page; with ";csv" appended, its CSV
}

// startHAProxy runs haproxy -db -f examples/fleet/haproxy.cfg in front of
// the fleet's hosts, and waits until it has them all UP.
func (f *fleet) startHAProxy(haproxy string) *haproxyLB {
	t := f.t
	t.Helper()
	lbPort, statsPort := f.ports.block(1), f.ports.block(1)
	lb := &haproxyLB{
		t:        t,
		out:      &syncbuf.Buffer{},
		done:     make(chan struct{}),
		addr:     "127.0.0.1:" + strconv.Itoa(lbPort),
		statsURL: fmt.Sprintf("http://127.0.0.1:%d/stats", statsPort),
	}
	cfg, err := filepath.Abs(fleetHAProxyConfig)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"FLEET_LB_BIND="+lb.addr,
		"FLEET_STATS_BIND=127.0.0.1:"+strconv.Itoa(statsPort),
		"FLEET_STATS_SOCKET="+filepath.Join(t.TempDir(), "haproxy.sock"),
		"FLEET_HOST1="+f.hosts[0].addr,
		"FLEET_HOST2="+f.hosts[1].addr,
		"FLEET_PROXY_PORT="+strconv.Itoa(f.proxyPort),
		"FLEET_ADMIN_PORT="+strconv.Itoa(f.adminPort),
		"FLEET_CHECK_INTER="+fleetCheckInter,
	)
	check := exec.Command(haproxy, "-c", "-f", cfg)
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfg, err, out)
	}
	lb.cmd = exec.Command(haproxy, "-db", "-f", cfg)
	lb.cmd.Env = env
	lb.cmd.Stdout, lb.cmd.Stderr = lb.out, lb.out
	if err := lb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { lb.cmd.Wait(); close(lb.done) }()
	t.Cleanup(func() {
		lb.stop()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", tail(lb.out.String(), 8000))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := lb.stats()
		up := 0
		for _, h := range f.hosts {
			if err == nil && st[h.name]["status"] == "UP" {
				up++
			}
		}
		if up == len(f.hosts) {
			return lb
		}
		select {
		case <-lb.done:
			t.Fatalf("haproxy exited at start\n%s", lb.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not have the hosts UP within 10s: %v %v\n%s", st, err, lb.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills HAProxy, by its pid, and waits for it; it may be called again.
func (lb *haproxyLB) stop() {
	select {
	case <-lb.done:
	default:
		lb.cmd.Process.Signal(syscall.SIGKILL)
		<-lb.done
	}
}

// stats reads HAProxy's CSV stats and returns the backend smoothserve's
// servers, by name, each a map of column → value ("status", "wretr", …).
func (lb *haproxyLB) stats() (map[string]map[string]string, error) {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(lb.statsURL + ";csv;norefresh")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("stats: %s", resp.Status)
	}
	return parseHAProxyCSV(string(b), "smoothserve")
}

// parseHAProxyCSV picks backend's server lines out of HAProxy's CSV
// stats ("# pxname,svname,…" then a line per proxy and server).
func parseHAProxyCSV(csv, backend string) (map[string]map[string]string, error) {
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "# ") {
		return nil, fmt.Errorf("stats: no CSV header in %q", tail(csv, 200))
	}
	names := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	servers := map[string]map[string]string{}
	for _, line := range lines[1:] {
		fields := strings.Split(line, ",")
		if len(fields) < 2 || fields[0] != backend || fields[1] == "BACKEND" || fields[1] == "FRONTEND" {
			continue
		}
		row := map[string]string{}
		for i, name := range names {
			if i < len(fields) && name != "" {
				row[name] = fields[i]
			}
		}
		servers[fields[1]] = row
	}
	return servers, nil
}

// lbGet is one GET / through HAProxy on a connection of its own.
func (lb *haproxyLB) get() (int, string, error) { return httpGet(lb.addr, "web.test", "/") }
