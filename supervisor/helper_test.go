package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/upstream"
)

// The test binary doubles as the instance: with SUPERVISOR_TEST_CHILD=1 it
// runs childMain instead of the tests. CHILD_MODE chooses its behaviour:
//
//	normal     serve HTTP on -port: "/" answers the pid, /healthz 200, /env the environment
//	exit       exit 1 at once
//	nolisten   never listen
//	die        serve, then exit 3 after CHILD_DIE_MS
//	health500  serve, but /healthz answers 500
//	grandchild serve, and start a grandchild in the same process group that ignores SIGTERM
//
// In every mode that serves, GET /sick makes /healthz answer 500 from then
// on, and GET /well makes it answer 200 again.
//
// CHILD_MODE_FILE names a file whose content, when it exists, overrides
// CHILD_MODE (a test changes what the next instances do). CHILD_IGNORE_TERM=1 ignores SIGTERM; CHILD_PRINT is printed to stdout and
// stderr. Every child first prints "child started pid=N port=P".
func TestMain(m *testing.M) {
	if os.Getenv("SUPERVISOR_TEST_CHILD") == "1" {
		childMain()
		return
	}
	os.Exit(m.Run())
}

func childMain() {
	fs := flag.NewFlagSet("child", flag.ExitOnError)
	port := fs.Int("port", 0, "port to listen on")
	fs.Parse(os.Args[1:])
	fmt.Printf("child started pid=%d port=%d\n", os.Getpid(), *port)
	if s := os.Getenv("CHILD_PRINT"); s != "" {
		fmt.Fprintf(os.Stdout, "out: %s\n", s)
		fmt.Fprintf(os.Stderr, "err: %s\n", s)
	}
	if os.Getenv("CHILD_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	mode := os.Getenv("CHILD_MODE")
	if f := os.Getenv("CHILD_MODE_FILE"); f != "" {
		if b, err := os.ReadFile(f); err == nil {
			mode = strings.TrimSpace(string(b))
		}
	}
	switch mode {
	case "exit":
		os.Exit(1)
	case "nolisten":
		select {}
	case "die":
		ms, _ := strconv.Atoi(os.Getenv("CHILD_DIE_MS"))
		time.AfterFunc(time.Duration(ms)*time.Millisecond, func() { os.Exit(3) })
	case "grandchild":
		cmd := exec.Command(os.Args[0], "-port=0")
		cmd.Env = append(os.Environ(), "CHILD_MODE=nolisten", "CHILD_IGNORE_TERM=1", "CHILD_PRINT=")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Println("grandchild:", err)
			os.Exit(2)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getpid()) })
	var sick atomic.Bool
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if mode == "health500" || sick.Load() {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) { sick.Store(true) })
	mux.HandleFunc("/well", func(w http.ResponseWriter, r *http.Request) { sick.Store(false) })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		wd, _ := os.Getwd()
		json.NewEncoder(w).Encode(map[string]any{"env": os.Environ(), "wd": wd})
	})
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(2)
	}
	http.Serve(ln, mux)
}

// freePortBase returns the first of n consecutive ports free on 127.0.0.1.
// It picks below the usual ephemeral range, where the tests' own outgoing
// connections take their ports.
func freePortBase(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(10000)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		ok := len(lns) == n
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no block of %d free ports", n)
	return 0
}

// testConfig is a configuration with one service "web" of n instances of
// the test binary, in mode; env is added to the service's Env.
func testConfig(t *testing.T, n int, mode string, env ...string) *config.Config {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	svc := &config.Service{
		Name:              "web",
		ServerNames:       []string{"web.test"},
		ServerIP:          "127.0.0.1",
		Port:              8080,
		StartInstancePort: freePortBase(t, 2*n),
		InstanceCount:     n,
		ExecutablePath:    exe,
		WorkingDir:        filepath.Dir(exe), // as Load fills it in
		Args:              []string{"-port={port}"},
		Env:               map[string]string{"SUPERVISOR_TEST_CHILD": "1", "CHILD_MODE": mode},
		Enabled:           true,
		StartTimeout:      5 * time.Second,
		StopTimeout:       5 * time.Second,
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		svc.Env[k] = v
	}
	return &config.Config{Dir: dir, LogDir: filepath.Join(dir, "logs", "nested"), Services: []*config.Service{svc}}
}

type harness struct {
	sup    *Supervisor
	set    *upstream.Set
	svc    *config.Service
	cancel context.CancelFunc
	done   chan error // Run's result
}

// start runs a supervisor for cfg until the test ends; then it checks that
// Run returned and that no process any child printed is left.
func start(t *testing.T, cfg *config.Config, tweak ...func(*Supervisor)) *harness {
	t.Helper()
	sets := make(map[string]*upstream.Set)
	for _, svc := range cfg.Services {
		sets[svc.Name] = upstream.NewSet(svc.Name, svc.StartTimeout)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	sup := New(cfg, sets, log)
	for _, f := range tweak {
		f(sup)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{sup: sup, set: sets[cfg.Services[0].Name], svc: cfg.Services[0], cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- sup.Run(ctx) }()
	eventually(t, 2*time.Second, "Run publishes the service", func() bool {
		// A service that stays stopped (the handoff says so) shows no slot.
		return sup.list()[0].snap.Load() != initialSnapshot || sup.killCtx.Err() != nil
	})
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(20 * time.Second):
			sup.Kill()
			t.Errorf("Run did not return 20s after cancel")
			<-h.done
		}
		// SIGKILL takes effect a moment after it is sent.
		deadline := time.Now().Add(2 * time.Second)
		for _, pid := range childPids(t, cfg) {
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Errorf("child pid %d left running", pid)
			}
		}
	})
	return h
}

// stop cancels Run and waits for its result.
func (h *harness) stop(t *testing.T, within time.Duration) error {
	t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v of cancel", within)
		return nil
	}
}

var startedRE = regexp.MustCompile(`child started pid=(\d+)`)

// childPids is every pid a child of cfg's services printed in its log.
func childPids(t *testing.T, cfg *config.Config) []int {
	var pids []int
	for _, svc := range cfg.Services {
		data, _ := os.ReadFile(filepath.Join(cfg.LogDir, svc.Name+".log"))
		for _, m := range startedRE.FindAllStringSubmatch(string(data), -1) {
			pid, _ := strconv.Atoi(m[1])
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid runs. A zombie counts as gone: a grandchild is
// reaped by init, which in a container may never do it.
func alive(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(after, "Z")
}

// eventually polls cond every 10ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func awaitReady(t *testing.T, h *harness, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := h.sup.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// instances is the status of the harness's service.
func (h *harness) instances() []InstanceStatus {
	return h.sup.Status()[0].Instances
}

// readLog is the service's log file.
func readLog(t *testing.T, cfg *config.Config) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cfg.LogDir, cfg.Services[0].Name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// get fetches path from the instance at addr.
func get(t *testing.T, addr, path string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func netListen(port int) (net.Listener, error) {
	return net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
}
