package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/freeport"
	"smoothserve/internal/proctree"
	"smoothserve/internal/syncbuf"
)

// bin holds the paths of the binaries built for this test run.
var bin struct {
	smoothserve, smoothtool, demo string
	demo2                         string // the demo built as version 2: a new release
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smoothserve-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.smoothserve = filepath.Join(dir, "smoothserve")
	bin.smoothtool = filepath.Join(dir, "smoothtool")
	bin.demo = filepath.Join(dir, "demo")
	bin.demo2 = filepath.Join(dir, "demo2")
	for out, pkg := range map[string]string{bin.smoothserve: "./cmd/smoothserve", bin.smoothtool: "./cmd/smoothtool", bin.demo: "./examples/demo", bin.demo2: "./examples/demo"} {
		args := []string{"build", "-o", out}
		if out == bin.demo2 {
			args = append(args, "-ldflags", "-X main.defaultVersion=2")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the Makefile builds them
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's installation: a folder with smoothserve.yaml, a
// services folder and its own copy of the demo binary.
type env struct {
	t         *testing.T
	dir       string
	config    string
	demo      string // the demo executable the services run
	proxyPort int
	ports     *portBlock
	inherit   []*os.File // descriptors the daemon inherits from its starter (3 on), as a shell's pipe
}

// newEnv makes a folder and reserves a block of free ports; the first one
// is the proxy port.
func newEnv(t *testing.T, nports int) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "smoothserve.yaml"), ports: reservePorts(t, nports)}
	e.proxyPort = e.ports.next()
	e.demo = filepath.Join(dir, "app", "demo")
	copyFile(t, bin.demo, e.demo)
	if err := os.MkdirAll(filepath.Join(dir, "services"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeMain("")
	return e
}

// writeMain writes smoothserve.yaml with the proxy port and extra lines.
func (e *env) writeMain(extra string) {
	e.t.Helper()
	writeFile(e.t, e.config, fmt.Sprintf("ProxyAddr: 127.0.0.1\nProxyPort: %d\nSubConfigDir: ./services\n%s", e.proxyPort, extra))
}

// service writes services/NAME.yaml for a service of count demo instances
// with its own port range, and returns its first instance port.
func (e *env) service(name, hosts string, count int, extra string) int {
	e.t.Helper()
	return e.serviceOf("./app/demo", name, hosts, count, extra)
}

// serviceOf is service with another executable (relative to e.dir), which
// must answer /healthz.
func (e *env) serviceOf(executable, name, hosts string, count int, extra string) int {
	e.t.Helper()
	start := e.ports.block(2 * count)
	body := fmt.Sprintf("name: %s\nserver_name: %q\nstart_instance_port: %d\ninstance_count: %d\nexecutable_path: %s\nhealth_check: /healthz\n%s",
		name, hosts, start, count, executable, extra)
	writeFile(e.t, filepath.Join(e.dir, "services", name+".yaml"), body)
	return start
}

// withAdmin writes smoothserve.yaml with an admin listener (AdminAddr) on
// the env's next port, and returns its address.
func (e *env) withAdmin() string {
	e.t.Helper()
	admin := "127.0.0.1:" + strconv.Itoa(e.ports.next())
	e.writeMain("AdminAddr: " + admin + "\n")
	return admin
}

func (e *env) proxyAddr() string { return "127.0.0.1:" + strconv.Itoa(e.proxyPort) }

// daemon is a running smoothserve.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error // valid after done
}

func (e *env) startDaemon(args ...string) *daemon {
	e.t.Helper()
	d := &daemon{t: e.t, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(bin.smoothserve, append([]string{"--config", e.config}, args...)...)
	d.cmd.Dir = e.dir
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.ExtraFiles = e.inherit
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	e.t.Cleanup(func() {
		d.killAll()
		if e.t.Failed() {
			e.t.Logf("smoothserve output:\n%s", d.out.String())
			logs, _ := filepath.Glob(filepath.Join(e.dir, "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				e.t.Logf("%s:\n%s", filepath.Base(l), tail(string(b), 3000))
			}
		}
	})
	return d
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// killAll kills the daemon and every instance it left, by pid.
func (d *daemon) killAll() {
	kids := proctree.Children(d.pid())
	select {
	case <-d.done:
	default:
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}
	for _, pid := range kids {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// wait waits for the daemon to exit and returns its exit code.
func (d *daemon) wait(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		d.t.Fatalf("smoothserve did not exit within %v\n%s", timeout, d.out.String())
	}
	if d.err == nil {
		return 0
	}
	if ee, ok := d.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	d.t.Fatalf("waiting for smoothserve: %v", d.err)
	return -1
}

// waitPids polls GET / with Host until n distinct instance pids answered,
// all of them children of the daemon, and returns them.
func (d *daemon) waitPids(addr, host string, n int, timeout time.Duration) map[int]bool {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	seen := map[int]bool{}
	for time.Now().Before(deadline) {
		pid, err := getPid(addr, host)
		if err == nil && isChild(d.pid(), pid) {
			seen[pid] = true
			if len(seen) >= n {
				return seen
			}
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("waited %v for %d instances of %s to answer, saw %v\n%s", timeout, n, host, seen, d.out.String())
	return nil
}

// getPid sends one GET / on a fresh connection and returns the pid that
// answered.
func getPid(addr, host string) (int, error) {
	status, body, err := httpGet(addr, host, "/")
	if err != nil {
		return 0, err
	}
	if status != 200 {
		return 0, fmt.Errorf("status %d: %s", status, body)
	}
	return pidIn(body)
}

func pidIn(body string) (int, error) {
	i := strings.Index(body, "pid=")
	if i < 0 {
		return 0, fmt.Errorf("no pid in %q", body)
	}
	f := strings.Fields(body[i+4:])
	if len(f) == 0 {
		return 0, fmt.Errorf("no pid in %q", body)
	}
	return strconv.Atoi(f[0])
}

// httpGet is one request on its own connection, with no retry.
func httpGet(addr, host, path string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	code, _ := strconv.Atoi(f[1])
	rest, _ := io.ReadAll(br)
	_, body, _ := strings.Cut(string(rest), "\r\n\r\n")
	return code, body, nil
}

func isChild(parent, pid int) bool { return proctree.Parent(pid) == parent }

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// portBlock hands out ports from a reserved free range.
type portBlock struct {
	t          *testing.T
	base, used int
	size       int
}

// The ports handed out lie below the ephemeral range (package freeport).
var (
	portMu            sync.Mutex
	portLow, portHigh = freeport.Low, freeport.EphemeralLow()
	portCursor        = portLow + rand.IntN(portHigh-portLow-1000)
)

// reservePorts finds n consecutive ports on 127.0.0.1 that nothing listens
// on. Tests in one process take distinct ranges.
func reservePorts(t *testing.T, n int) *portBlock {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for tries := 0; tries < 200; tries++ {
		if portCursor+n > portHigh {
			portCursor = portLow
		}
		base := portCursor
		portCursor += n
		if freeport.Free(base, n) {
			return &portBlock{t: t, base: base, size: n}
		}
	}
	t.Fatalf("no %d free consecutive ports", n)
	return nil
}

func (b *portBlock) next() int { return b.block(1) }

func (b *portBlock) block(n int) int {
	if b.used+n > b.size {
		b.t.Fatalf("port block of %d exhausted", b.size)
	}
	p := b.base + b.used
	b.used += n
	return p
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyFile installs a copy of from at to, as installExecutable does.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	installExecutable(t, to, b)
}

// installExecutable puts data at path as a deploy does: written beside it
// (path.tmp, which watch_ignore skips), mode 0755, then renamed over it.
func installExecutable(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
