package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A fleet is what examples/fleet describes, on one machine: two smoothserve
// hosts, each with its own folder, configuration, control socket, state
// and pid file, proxying on 127.0.0.2 and 127.0.0.3 (the same ports on
// each, as on real hosts), behind one HAProxy on 127.0.0.1.
type fleet struct {
	t     *testing.T
	hosts []*fleetHost
	ports *portBlock
	// The ports every host uses on its own address, as haproxy.cfg's
	// FLEET_PROXY_PORT and FLEET_ADMIN_PORT.
	proxyPort, adminPort int
}

// fleetHost is one smoothserve host of the fleet, installed as the seed
// lays it out (bin/smoothserve, bin/smoothtool), running the demo service
// "web" (3 instances).
type fleetHost struct {
	*installed
	name      string // its server name in haproxy.cfg and the inventory: host1, host2
	addr      string // its ProxyAddr
	adminAddr string // its AdminAddr
	firstPort int    // its instances' first port (the demo answers port=…)
	lastPort  int    // its instances' last port (a service reserves 2 × instance_count)
}

// fleetDrainDelay is the hosts' DrainDelay: longer than HAProxy takes to
// see a drained host (inter 500ms × fall 2 in the test's rendering of
// haproxy.cfg, plus a check), as README's rule asks.
const fleetDrainDelay = 2 * time.Second

// newFleet starts the two hosts and waits until each serves.
func newFleet(t *testing.T) *fleet {
	t.Helper()
	const instances = 3
	// HAProxy's port and its stats port, the hosts' proxy and admin ports,
	// and the instance ports of each host (instance ports are all on
	// 127.0.0.1, so the hosts of one machine need their own).
	f := &fleet{t: t, ports: reservePorts(t, 4+2*2*instances)}
	f.proxyPort, f.adminPort = f.ports.block(1), f.ports.block(1)
	for i, addr := range []string{"127.0.0.2", "127.0.0.3"} {
		f.hosts = append(f.hosts, f.newHost(fmt.Sprintf("host%d", i+1), addr, instances))
	}
	// Started together: each start waits for its instances to be ready.
	var wg sync.WaitGroup
	for _, h := range f.hosts {
		wg.Go(func() {
			if code, out, errOut := h.run("start"); code != 0 {
				t.Errorf("%s: smoothtool start: exit %d\n%s%s", h.name, code, out, errOut)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, h := range f.hosts {
		if code, body, err := httpGet(h.proxy(), "web.test", "/"); err != nil || code != 200 {
			t.Fatalf("%s: GET / on %s: %d %v %s", h.name, h.proxy(), code, err, body)
		}
	}
	return f
}

// newHost writes a host's folder: smoothserve.yaml with ProxyAddr addr,
// the admin listener on addr (its /health is what HAProxy checks), the
// load balancer's address as a trusted proxy, and the web service.
func (f *fleet) newHost(name, addr string, instances int) *fleetHost {
	t := f.t
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "smoothserve.yaml"), ports: f.ports, proxyPort: f.proxyPort}
	e.demo = filepath.Join(dir, "app", "demo")
	copyFile(t, bin.demo, e.demo)
	h := &fleetHost{name: name, addr: addr, adminAddr: net.JoinHostPort(addr, strconv.Itoa(f.adminPort))}
	writeFile(t, e.config, fmt.Sprintf(`ProxyAddr: %s
ProxyPort: %d
SubConfigDir: ./services
AdminAddr: %s
DrainDelay: %s
TrustedProxies: [127.0.0.1]
`, addr, f.proxyPort, h.adminAddr, fleetDrainDelay))
	h.firstPort = e.service("web", "web.test", instances, closesIdleConns)
	h.lastPort = h.firstPort + 2*instances - 1
	h.installed = install(e)
	return h
}

// proxy is the host's proxy address, where HAProxy sends its requests.
func (h *fleetHost) proxy() string { return net.JoinHostPort(h.addr, strconv.Itoa(h.proxyPort)) }

// owns reports whether an instance port is one of this host's: the demo
// names its port in every answer, so a response tells which host sent it.
func (h *fleetHost) owns(port int) bool { return port >= h.firstPort && port <= h.lastPort }

// health is one GET /health on the host's admin listener: its status, 0
// and why when it did not answer.
func (h *fleetHost) health() (int, error) {
	code, _, err := httpGet(h.adminAddr, h.adminAddr, "/health")
	if err != nil {
		return 0, err
	}
	return code, nil
}

// hostState is host.state of smoothtool status --json: serving, draining
// or drained.
func (h *fleetHost) hostState() string {
	h.t.Helper()
	st := h.statusJSON()
	host, _ := st["host"].(map[string]any)
	s, _ := host["state"].(string)
	return s
}

// versions asks every ready instance of the host, on its own port, which
// version it runs, and returns it by port.
func (h *fleetHost) versions() map[int]string {
	h.t.Helper()
	m := map[int]string{}
	for port := range h.instancesNow() {
		code, body, err := httpGet("127.0.0.1:"+strconv.Itoa(port), "web.test", "/")
		if err != nil || code != 200 {
			h.t.Fatalf("%s: GET / from the instance on :%d: %d %v", h.name, port, code, err)
		}
		m[port] = versionIn(body)
	}
	return m
}

// versionIn is the version a demo response names ("… version=2").
func versionIn(body string) string {
	_, v, _ := strings.Cut(body, "version=")
	return strings.TrimSpace(v)
}

// portIn is the instance port a demo response names ("… port=8086 …").
func portIn(body string) int {
	_, rest, ok := strings.Cut(body, "port=")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return 0
	}
	p, _ := strconv.Atoi(f[0])
	return p
}

// installSmoothserve puts a new smoothserve binary in the host's bin,
// where `smoothtool upgrade` finds it.
func (h *fleetHost) installSmoothserve(from string) { copyFile(h.t, from, h.bin) }

// needCommand returns the path of a command a test needs, skipping
// the test where it is not installed, but for CI, where .ci/run installs
// it and its absence is a failure.
func needCommand(t *testing.T, command, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(command)
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("CI=%s and %s is not on PATH (.ci/run installs Debian's %s): %v", ci, command, debianPackage, err)
		}
		t.Skipf("%s is not on PATH: %v", command, err)
	}
	return path
}
