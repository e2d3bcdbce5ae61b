package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The connections part (issue 20): what many client connections cost each
// proxy. Two wrk tables with 1 000 and 5 000 busy keep-alive connections
// (sideBySideTable, as the plain ones), and the memory an idle keep-alive
// connection holds, at 1 000 and 10 000 of them (idleconns.go). Every
// proxy is allowed connLimits: nginx's 4096 worker_connections and
// HAProxy's maxconn 4096 of the other parts would not take 10 000.

// connWorkloads are the connections part's wrk tables. wrk's timeout is
// raised from 2 s: with 5 000 connections on 2 cores a response takes
// about half a second, and the slowest percent would be timeout errors,
// not a p99.
var connWorkloads = []workload{
	{title: "Many connections: GET /, 1,000 busy keep-alive connections", conns: 1000, path: "/", timeout: 10 * time.Second},
	{title: "Many connections: GET /, 5,000 busy keep-alive connections", conns: 5000, path: "/", timeout: 10 * time.Second},
}

// connLimits are what the proxies of the connections part may hold.
type connLimits struct {
	maxConns int // nginx worker_connections, HAProxy maxconn
	fdLimit  int // nginx worker_rlimit_nofile, HAProxy ulimit-n
	backlog  int // nginx's listen backlog
}

// connMaxConns leaves room above the 10 000 idle connections for the
// upstream ones; all of them may be in one nginx worker.
const connMaxConns = 16384

// somaxconn is the kernel's cap on a listen queue, what Go and HAProxy ask
// for (4096 since Linux 5.4).
func somaxconn() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 4096
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 4096
	}
	return n
}

// parseNoFile reads the soft limit of open files from a /proc/PID/limits.
func parseNoFile(limits string) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(limits))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Max open files")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			break
		}
		if f[0] == "unlimited" {
			return -1, nil
		}
		return strconv.Atoi(f[0])
	}
	return 0, fmt.Errorf("no Max open files in %q", limits)
}

// noFileLimit is the lowest soft limit of open files of pids, 0 if none
// could be read.
func noFileLimit(pids []int) int {
	low := 0
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
		if err != nil {
			continue
		}
		if n, err := parseNoFile(string(b)); err == nil && n > 0 && (low == 0 || n < low) {
			low = n
		}
	}
	return low
}

// childNoFile is the soft limit of open files a child of the bench gets,
// as a shell says (ulimit -Sn): what wrk runs with.
func childNoFile() string {
	out, err := exec.Command("sh", "-c", "ulimit -Sn").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// connectionsCost runs the connections part: a smoothserve of its own,
// each other proxy with connLimits in front of the instances of a
// smoothserve of its own, the busy connection tables, then the idle memory
// one, each measurement with a proxy started for it.
//
// Instances of its own for each proxy: under 5 000 connections a proxy
// opens more connections to the instances than its pool keeps, and the
// ones it closes wait in TIME_WAIT for a minute, each holding a port
// toward that instance. Sharing the instances, a proxy would run short of
// ports the proxy measured before it took.
func (b *bench) connectionsCost(ctx context.Context) ([]markdowner, error) {
	dir := filepath.Join(b.dir, "connections")
	// HAProxy's and Caddy's templates have a TLS port, unused here.
	cert, err := makeCert(filepath.Join(dir, "tls"))
	if err != nil {
		return nil, err
	}
	upstreams := map[string][]string{}
	var proxies []*proxy
	var daemons []*daemon
	defer func() {
		for _, d := range daemons {
			d.stop()
		}
	}()
	for _, name := range proxyNames() {
		d, addrs, err := b.startInstances(filepath.Join(dir, "smoothserve-"+strings.ToLower(name)))
		if err != nil {
			return nil, err
		}
		daemons = append(daemons, d)
		upstreams[name] = addrs
		if name == "smoothserve" {
			proxies = append(proxies, &proxy{name: name, url: d.url(), pids: d.pids, stop: d.stop})
		}
	}
	limits := connLimits{maxConns: connMaxConns, fdLimit: int(b.noFile), backlog: somaxconn()}
	opts := proxyOptions{cert: cert, limits: limits}
	for _, s := range otherProxies {
		p, err := startProxy(s, filepath.Join(dir, strings.ToLower(s.name)), upstreams[s.name], opts)
		if err != nil {
			return nil, err
		}
		b.stops = append(b.stops, p.stop)
		proxies = append(proxies, p)
	}
	note := limitsNote(proxies, limits)
	var parts []markdowner
	for _, w := range connWorkloads {
		t, err := b.sideBySideTable(ctx, proxies, w)
		if t != nil {
			t.notes = append(t.notes, note, "each proxy in front of 3 instances of its own (a smoothserve's): "+
				"the TIME_WAIT its closed upstream connections leave holds ports toward its instances only")
			parts = append(parts, t)
		}
		if err != nil {
			return parts, err
		}
	}
	for _, p := range proxies[1:] {
		p.stop()
	}
	for _, kind := range []idleKind{idlePlain, idleTLS, idleH2, idleTunnel, idleStream} {
		t, err := b.idleMemory(ctx, dir, upstreams, opts, kind)
		if t != nil {
			t.notes = append(t.notes, note)
			parts = append(parts, t)
		}
		if err != nil {
			return parts, err
		}
	}
	return parts, nil
}

// startInstances starts a smoothserve in dir and waits until it serves;
// its instances' addresses are the upstreams of another proxy.
func (b *bench) startInstances(dir string) (*daemon, []string, error) {
	d, err := startDaemon(b.bin, dir, daemonOptions{})
	if err != nil {
		return nil, nil, err
	}
	b.stops = append(b.stops, d.stop)
	addrs, err := d.waitReady(10*time.Second, d.first)
	if err == nil {
		err = waitServing(d.url(), 15*time.Second, d.first)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("smoothserve on %s: %w", d.url(), err)
	}
	return d, addrs, nil
}

// limitsNote says what each proxy may hold, as the busy tables ran it.
func limitsNote(proxies []*proxy, l connLimits) string {
	var fds []string
	for _, p := range proxies {
		fds = append(fds, fmt.Sprintf("%s %d", p.name, noFileLimit(p.pids())))
	}
	return fmt.Sprintf("limits: open files (soft, from /proc/PID/limits) %s, wrk %s; nginx `worker_connections %d`, "+
		"`worker_rlimit_nofile %d`, `listen ... backlog=%d` (the kernel's somaxconn, which Go and HAProxy ask for; nginx's own is 511); "+
		"HAProxy `maxconn %d`, `ulimit-n %d`, `no strict-limits` (it wants 2 descriptors a connection and alerts, but runs); "+
		"smoothserve and Caddy: Go raises its soft limit to the hard one at start, and sets no limit of connections",
		strings.Join(fds, ", "), childNoFile(), l.maxConns, l.fdLimit, l.backlog, l.maxConns, l.fdLimit)
}

// names are the proxies' names: smoothserve, then the others.
func proxyNames() []string {
	names := []string{"smoothserve"}
	for _, s := range otherProxies {
		names = append(names, s.name)
	}
	return names
}

// startFresh starts the proxy name with opts, in front of upstreams (the
// others), or with instances of its own (smoothserve), in a folder of its
// own under dir.
func (b *bench) startFresh(name, dir string, upstreams []string, opts proxyOptions) (*proxy, error) {
	if name == "smoothserve" {
		d, err := startDaemon(b.bin, dir, daemonOptions{cert: opts.cert})
		if err != nil {
			return nil, err
		}
		b.stops = append(b.stops, d.stop)
		if err := waitServing(d.url(), 15*time.Second, d.first); err != nil {
			d.stop()
			return nil, fmt.Errorf("smoothserve on %s: %w", d.url(), err)
		}
		p := &proxy{name: name, url: d.url(), pids: d.pids, stop: d.stop}
		if d.httpsPort != 0 {
			p.tlsURL = tlsURL(d.httpsPort)
		}
		return p, nil
	}
	i := slices.IndexFunc(otherProxies, func(s proxySetup) bool { return s.name == name })
	if i < 0 {
		return nil, fmt.Errorf("no proxy %q", name)
	}
	p, err := startProxy(otherProxies[i], dir, upstreams, opts)
	if err != nil {
		return nil, err
	}
	b.stops = append(b.stops, p.stop)
	return p, nil
}
