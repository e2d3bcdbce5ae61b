package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binaries are the programs built from the working tree at the start.
type binaries struct {
	smoothserve, smoothtool, demo string
}

// daemon is a smoothserve the benchmark runs with its own configuration in
// its own folder, serving one service, "bench", of 3 demo instances. After
// an upgrade the daemon is another process (a descendant of the first), so
// the current one is always found through the pid file.
type daemon struct {
	bin       binaries
	dir       string
	config    string
	port      int // the proxy port
	httpsPort int // its HTTPSPort; 0: none
	first     *child
	// instancePids are the instances last seen in the status, to kill should
	// the daemon not stop them.
	instancePids []int
}

// daemonStatus is the part of `smoothtool status --json` the benchmark reads.
type daemonStatus struct {
	Pid      int `json:"pid"`
	Services []struct {
		Name      string `json:"name"`
		Instances []struct {
			Port  int    `json:"port"`
			Pid   int    `json:"pid"`
			State string `json:"state"`
		} `json:"instances"`
	} `json:"services"`
}

const benchService = "bench"

// daemonOptions are what a daemon's service has beyond plain HTTP.
type daemonOptions struct {
	cert     tlsFiles // tls: files with these, at an HTTPSPort; none if cert.cert is ""
	compress bool     // compress: true
	// accessLog is the file of AccessLog (combined format); "": AccessLog: off.
	accessLog string
}

// startDaemon writes a configuration into dir, starts smoothserve with it
// and waits until its 3 instances are ready. The instances use the 6 ports
// from a free range (3 running, 3 for surge replacements).
func startDaemon(bin binaries, dir string, opts daemonOptions) (*daemon, error) {
	if err := mkdirs(dir, "services", "logs"); err != nil {
		return nil, err
	}
	data, err := listenData(dir, opts.cert)
	if err != nil {
		return nil, err
	}
	instancePort, err := freePortRange(benchAddr, 6)
	if err != nil {
		return nil, err
	}
	data.InstancePort, data.LastInstancePort, data.Demo = instancePort, instancePort+2, bin.demo
	data.Compress, data.AccessLog = opts.compress, opts.accessLog
	port, httpsPort := data.Port, 0
	if opts.cert.cert != "" {
		httpsPort = data.TLSPort
	}
	config, err := writeConfig("smoothserve.yaml.tmpl", dir, "smoothserve.yaml", data)
	if err != nil {
		return nil, err
	}
	if _, err := writeConfig("service.yaml.tmpl", filepath.Join(dir, "services"), benchService+".yaml", data); err != nil {
		return nil, err
	}
	c, err := startChild("smoothserve", filepath.Join(dir, "smoothserve.out"), os.Environ(), bin.smoothserve, "--config", config)
	if err != nil {
		return nil, err
	}
	d := &daemon{bin: bin, dir: dir, config: config, port: port, httpsPort: httpsPort, first: c}
	if _, err := d.waitReady(30*time.Second, c); err != nil {
		d.stop()
		return nil, fmt.Errorf("smoothserve: %w\n%s", err, c.logTail())
	}
	return d, nil
}

func (d *daemon) url() string { return fmt.Sprintf("http://%s:%d", benchAddr, d.port) }

// tool runs smoothtool with d's configuration.
func (d *daemon) tool(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, d.bin.smoothtool, append(args, "-c", d.config)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("smoothtool %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (d *daemon) status() (daemonStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st daemonStatus
	out, err := d.tool(ctx, "status", "--json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("smoothtool status --json: %w", err)
	}
	return st, nil
}

// waitReady waits until every instance of the bench service is ready and
// returns their addresses. c, when given, is the daemon process: its exit
// ends the wait.
func (d *daemon) waitReady(timeout time.Duration, c *child) ([]string, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if c != nil {
			if done, err := c.exited(); done {
				return nil, fmt.Errorf("exited: %v", err)
			}
		}
		st, err := d.status()
		if err == nil {
			addrs, err := readyInstances(st)
			if err == nil {
				d.instancePids = d.instancePids[:0]
				for _, in := range st.Services[0].Instances {
					d.instancePids = append(d.instancePids, in.Pid)
				}
				return addrs, nil
			}
			last = err
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("instances not ready after %s: %v", timeout, last)
}

func readyInstances(st daemonStatus) ([]string, error) {
	if len(st.Services) != 1 || st.Services[0].Name != benchService {
		return nil, fmt.Errorf("status: want the one service %q", benchService)
	}
	var addrs []string
	for _, in := range st.Services[0].Instances {
		if in.State != "ready" {
			return nil, fmt.Errorf("instance on :%d is %s", in.Port, in.State)
		}
		addrs = append(addrs, net.JoinHostPort(benchAddr, strconv.Itoa(in.Port)))
	}
	if len(addrs) != 3 {
		return nil, fmt.Errorf("%d instances, want 3", len(addrs))
	}
	return addrs, nil
}

// pid is the ready daemon, as its pid file says.
func (d *daemon) pid() int {
	b, err := os.ReadFile(filepath.Join(d.dir, "smoothserve.pid"))
	if err != nil {
		return d.first.pid()
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return d.first.pid()
	}
	return pid
}

// pids are the smoothserve processes now: the ready daemon, the one it
// replaced while that one drains (its parent), and one starting to replace
// it (its child). The instances are not counted: they are the backends
// every proxy shares.
func (d *daemon) pids() []int {
	pid := d.pid()
	pids := []int{pid}
	if st, err := readStat(pid); err == nil {
		if parent, err := readStat(st.ppid); err == nil && parent.comm == "smoothserve" {
			pids = append(pids, st.ppid)
		}
	}
	for kid, comm := range children(pid) {
		if comm == "smoothserve" {
			pids = append(pids, kid)
		}
	}
	return pids
}

// restartCycle is one `smoothtool restart`.
func (d *daemon) restartCycle() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := d.tool(ctx, "restart", benchService)
	return err
}

// trueCycle starts /bin/true and waits for it: a process start and
// nothing else, the least any upgrade (a new process) costs.
func (d *daemon) trueCycle() error {
	if err := exec.Command("/bin/true").Run(); err != nil {
		return fmt.Errorf("%w: /bin/true: %w", errFatal, err)
	}
	return nil
}

var upgradedLine = regexp.MustCompile(`pid (\d+) → (\d+)`)

// errFatal ends a loop: the daemon is not in a state to go on.
var errFatal = errors.New("fatal")

// upgradeCycle is one `smoothtool upgrade`, and the wait for the daemon it
// replaced to exit (smoothserve refuses an upgrade while its previous
// process still drains), so that a run ends with one daemon.
func (d *daemon) upgradeCycle() error {
	old := d.pid()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	out, err := d.tool(ctx, "upgrade")
	cancel()
	if err != nil {
		return err
	}
	if m := upgradedLine.FindStringSubmatch(out); m != nil {
		old, _ = strconv.Atoi(m[1])
	}
	if err := waitGone(old, 90*time.Second); err != nil {
		return fmt.Errorf("%w: old daemon: %w", errFatal, err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// stop stops the daemon and its instances gracefully (`smoothtool stop
// all`), and kills what is left of them after a minute. Idempotent.
func (d *daemon) stop() {
	if st, err := d.status(); err == nil && len(st.Services) == 1 {
		d.instancePids = d.instancePids[:0]
		for _, in := range st.Services[0].Instances {
			d.instancePids = append(d.instancePids, in.Pid)
		}
	}
	pids := d.pids()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	_, err := d.tool(ctx, "stop", "all")
	cancel()
	if err != nil && !strings.Contains(err.Error(), "not running") {
		fmt.Fprintf(os.Stderr, "bench: stopping smoothserve in %s: %v\n", d.dir, err)
	}
	for _, pid := range append(pids, d.instancePids...) {
		if pid > 0 && waitGone(pid, 5*time.Second) != nil {
			fmt.Fprintf(os.Stderr, "bench: pid %d (smoothserve in %s) still running: killing it\n", pid, d.dir)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				fmt.Fprintf(os.Stderr, "bench: kill %d: %v\n", pid, err)
			}
		}
	}
	d.first.stop(syscall.SIGKILL, time.Second) // reaps it; it has exited by now
}
