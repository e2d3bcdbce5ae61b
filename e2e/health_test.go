package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"smoothserve/control/api"
)

// healthFlipEnv, set in a service's env, makes the test binary, started as
// its instance, serve instead of running tests: the demo's requests of
// the strict load (/, /slow, /echo, /stream) answered as the demo does,
// and a /healthz that GET /sick makes fail (500) and GET /well mends, for
// a test to send to one instance's own port.
const healthFlipEnv = "SMOOTHSERVE_E2E_HEALTH_FLIP"

func init() {
	if os.Getenv(healthFlipEnv) != "1" {
		return
	}
	port := ""
	for _, a := range os.Args[1:] {
		if p, ok := strings.CutPrefix(a, "-port="); ok {
			port = p
		}
	}
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: healthFlipHandler(os.Getpid(), port)}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		<-stop // as a service must: finish the requests in flight, then exit
		srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "health flip:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// healthFlipHandler answers as the demo does what loadclient sends, and
// flips its health check.
func healthFlipHandler(pid int, port string) http.Handler {
	var sick atomic.Bool
	ms := func(r *http.Request, key string, def int) int {
		if n, err := strconv.Atoi(r.URL.Query().Get(key)); err == nil {
			return n
		}
		return def
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from demo pid=%d port=%s version=health-flip\n", pid, port)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if sick.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) { sick.Store(true) })
	mux.HandleFunc("/well", func(w http.ResponseWriter, r *http.Request) { sick.Store(false) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		d := ms(r, "ms", 0)
		time.Sleep(time.Duration(d) * time.Millisecond)
		fmt.Fprintf(w, "slow %dms pid=%d\n", d, pid)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header()["Content-Type"] = nil
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		lines, every := ms(r, "lines", 10), ms(r, "ms", 100)
		rc := http.NewResponseController(w)
		for i := 1; i <= lines; i++ {
			if i > 1 {
				time.Sleep(time.Duration(every) * time.Millisecond)
			}
			fmt.Fprintf(w, "stream line=%d/%d pid=%d\n", i, lines, pid)
			if rc.Flush() != nil {
				return
			}
		}
	})
	return mux
}

// apiStatus is smoothtool status --json, as the control API types.
func (e *env) apiStatus() api.Status {
	e.t.Helper()
	code, out, errOut := e.tool("status", "--json")
	if code != 0 {
		e.t.Fatalf("smoothtool status --json: exit %d\n%s%s", code, out, errOut)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// waitInFlight waits, up to 10 s, until n requests or more are in flight
// at the daemon's instances, as smoothtool status counts them: a request
// a test sent is then surely under way, however loaded the machine.
func (e *env) waitInFlight(n int64) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got int64
		for _, s := range e.apiStatus().Services {
			for _, in := range s.Instances {
				got += in.Inflight
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d requests in flight at the instances after 10s, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// healthSlot is slot's instance of service web, by smoothtool status.
func (e *env) healthSlot(slot int) api.InstanceStatus {
	e.t.Helper()
	for _, s := range e.apiStatus().Services {
		for _, in := range s.Instances {
			if s.Name == "web" && in.Slot == slot && in.State != api.StateDraining && in.State != api.StateStopping {
				return in
			}
		}
	}
	return api.InstanceStatus{}
}

// waitHealthSlot polls smoothtool status until cond holds for slot's instance.
func (e *env) waitHealthSlot(d *daemon, slot int, within time.Duration, what string, cond func(api.InstanceStatus) bool) api.InstanceStatus {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		in := e.healthSlot(slot)
		if cond(in) {
			return in
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("web#%d not %s within %v: %+v\n%s", slot, what, within, in, d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pidsThroughProxy sends n requests through the proxy, each on its own
// connection, and counts the pids that answered.
func pidsThroughProxy(t *testing.T, e *env, n int) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for range n {
		pid, err := getPid(e.proxyAddr(), "web.test")
		if err != nil {
			t.Fatalf("GET / through the proxy: %v", err)
		}
		seen[pid]++
	}
	return seen
}

// An instance whose health check starts failing leaves rotation, comes
// back once it passes, and is replaced when it fails for longer than
// unhealthy_restart_after; under the strict load, no request fails.
// unhealthy_restart_after is 4 s: the first spell of failing (seen in
// status, 30 requests, the flip back) must end before it, on a loaded
// machine too.
func TestUnhealthyInstanceLeavesRotationAndIsReplaced(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 8)
	e.serviceOf(exe, "web", "web.test", 3, fmt.Sprintf(
		"health_check_interval: 200ms\nhealth_check_fails: 2\nunhealthy_restart_after: 4s\nenv:\n  %s: \"1\"\n", healthFlipEnv))
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 3, 15*time.Second)
	load := mixedLoad(e, "web.test")
	defer load.Stop()
	time.Sleep(300 * time.Millisecond)

	sick := e.healthSlot(1)
	instance := net.JoinHostPort("127.0.0.1", strconv.Itoa(sick.Port))
	flip := func(path string) {
		t.Helper()
		if status, body, err := httpGet(instance, instance, path); err != nil || status != 200 {
			t.Fatalf("GET %s on web#1: %d %q %v", path, status, body, err)
		}
	}

	// Failing: out of rotation, its process untouched.
	flip("/sick")
	e.waitHealthSlot(d, 1, 5*time.Second, "unhealthy", func(in api.InstanceStatus) bool { return in.State == api.StateUnhealthy })
	if seen := pidsThroughProxy(t, e, 30); seen[sick.Pid] > 0 {
		t.Errorf("the unhealthy pid %d answered %d of 30 requests: %v", sick.Pid, seen[sick.Pid], seen)
	}

	// Passing again: back in rotation, the same process.
	flip("/well")
	back := e.waitHealthSlot(d, 1, 5*time.Second, "ready again", func(in api.InstanceStatus) bool { return in.State == api.StateReady })
	if back.Pid != sick.Pid || back.Restarts != 0 {
		t.Errorf("web#1 after passing again: %+v, want pid %d not restarted", back, sick.Pid)
	}
	d.waitPids(e.proxyAddr(), "web.test", 3, 5*time.Second)

	// Failing for longer than unhealthy_restart_after: replaced.
	flip("/sick")
	failedAt := time.Now()
	e.waitHealthSlot(d, 1, 5*time.Second, "unhealthy", func(in api.InstanceStatus) bool { return in.State == api.StateUnhealthy })
	fresh := e.waitHealthSlot(d, 1, 15*time.Second, "replaced", func(in api.InstanceStatus) bool {
		return in.State == api.StateReady && in.Pid != sick.Pid && in.Pid != 0
	})
	if took := time.Since(failedAt); took < 4*time.Second {
		t.Errorf("replaced %v after its checks began failing, before unhealthy_restart_after (4s)", took)
	}
	if fresh.Restarts != 1 || alive(sick.Pid) {
		t.Errorf("web#1 after its replacement: %+v (old pid %d alive: %v), want restarted once", fresh, sick.Pid, alive(sick.Pid))
	}
	time.Sleep(300 * time.Millisecond)

	res := load.Stop()
	t.Logf("load: %v", res)
	if err := res.Err(); err != nil {
		t.Errorf("requests failed while an instance went unhealthy and was replaced: %v", err)
	}
	logb, _ := os.ReadFile(filepath.Join(e.dir, "logs", "web.log"))
	for _, want := range []string{
		fmt.Sprintf("web#1 pid %d is unhealthy: 2 health checks in a row failed", sick.Pid),
		fmt.Sprintf("web#1 pid %d out of rotation until its health check passes", sick.Pid),
		fmt.Sprintf("web#1 pid %d back in rotation", sick.Pid),
		fmt.Sprintf("web#1 pid %d unhealthy for 4s: health check GET /healthz: 500 Internal Server Error: replacing it", sick.Pid),
	} {
		if !strings.Contains(string(logb), want) {
			t.Errorf("web.log lacks %q", want)
		}
	}
}
