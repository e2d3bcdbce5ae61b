package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/upstream"
)

func TestStartsInstancesIntoRotation(t *testing.T) {
	cfg := testConfig(t, 3, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)

	st := h.sup.Status()
	if len(st) != 1 || st[0].Name != "web" || st[0].State != ServiceRunning || st[0].Port != 8080 ||
		!slices.Equal(st[0].Hosts, []string{"web.test"}) {
		t.Fatalf("Status() = %+v, want web running on 8080 for web.test", st)
	}
	base := h.svc.StartInstancePort
	pids := map[int]bool{}
	for i, in := range st[0].Instances {
		if in.Slot != i || in.Port != base+i || in.State != StateReady || in.Pid <= 0 ||
			in.Restarts != 0 || in.StartedAt.IsZero() || in.Error != "" {
			t.Errorf("instance %d: got %+v, want slot %d ready on %d with a pid", i, in, i, base+i)
		}
		if !alive(in.Pid) {
			t.Errorf("instance %d: pid %d not running", i, in.Pid)
		}
		pids[in.Pid] = true
	}
	if len(pids) != 3 {
		t.Errorf("got pids %v, want 3 distinct", pids)
	}

	bs := h.set.Backends()
	if len(bs) != 3 {
		t.Fatalf("got %d backends in rotation, want 3", len(bs))
	}
	for _, b := range bs {
		want := fmt.Sprintf("127.0.0.1:%d", base+b.Slot)
		if b.Addr != want || b.Service != "web" {
			t.Errorf("backend %d: got %s %s, want web %s", b.Slot, b.Service, b.Addr, want)
		}
		if got, want := get(t, b.Addr, "/"), strconv.Itoa(st[0].Instances[b.Slot].Pid); got != want {
			t.Errorf("backend %d answered pid %s, want %s", b.Slot, got, want)
		}
	}
}

func TestCrashIsRestarted(t *testing.T) {
	cfg := testConfig(t, 3, "normal")
	h := start(t, cfg)
	awaitReady(t, h, 10*time.Second)

	// Count one answered request on slot 1, to see Served carry over.
	var old *upstream.Backend
	for old == nil {
		b := h.set.Pick(nil)
		if b.Slot == 1 {
			old = b
		}
		b.Release(b.Slot == 1)
	}
	oldPid := h.instances()[1].Pid
	if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the killed instance leaves rotation", func() bool {
		return !slices.Contains(h.set.Backends(), old)
	})
	if !old.Draining() {
		t.Error("the lost backend is not draining")
	}
	eventually(t, 5*time.Second, "a new process serves slot 1", func() bool {
		in := h.instances()[1]
		if in.State != StateReady || in.Pid == oldPid {
			return false
		}
		for _, b := range h.set.Backends() {
			if b.Slot == 1 && b != old {
				return true
			}
		}
		return false
	})
	for _, in := range h.instances() {
		want := 0
		if in.Slot == 1 {
			want = 1
		}
		if in.Restarts != want {
			t.Errorf("slot %d: restarts %d, want %d", in.Slot, in.Restarts, want)
		}
	}
	if got := h.instances()[1].Served; got != 1 {
		t.Errorf("slot 1 served %d across its lifetimes, want 1", got)
	}
	if want := fmt.Sprintf("smoothserve: web#1 pid %d exited: signal: killed", oldPid); !strings.Contains(readLog(t, cfg), want) {
		t.Errorf("log lacks %q", want)
	}
}

func TestExitAfterReadyIsRestarted(t *testing.T) {
	cfg := testConfig(t, 1, "die", "CHILD_DIE_MS=300")
	h := start(t, cfg)
	eventually(t, 5*time.Second, "the instance is restarted after it exits", func() bool {
		return h.instances()[0].Restarts >= 1
	})
	if want := "exited: exit status 3"; !strings.Contains(readLog(t, cfg), want) {
		t.Errorf("log lacks %q", want)
	}
}

func TestFailingStartBacksOff(t *testing.T) {
	cfg := testConfig(t, 1, "exit")
	h := start(t, cfg)
	time.Sleep(2 * time.Second)

	// 100+200+400+800 ms of backoff: five starts in 2s; a tight loop makes
	// hundreds. A loaded machine, slow to start each, makes fewer: the
	// third may come later.
	starts := func() int { return len(startedRE.FindAllString(readLog(t, cfg), -1)) }
	if n := starts(); n > 7 {
		t.Errorf("%d starts in 2s, want 3 to 7", n)
	}
	eventually(t, 10*time.Second, "3 starts", func() bool { return starts() >= 3 && h.instances()[0].Restarts >= 2 })
	in := h.instances()[0]
	want := fmt.Sprintf("starting instance web#0 on :%d: pid ", in.Port)
	if in.Restarts < 2 || !strings.Contains(in.Error, want) || !strings.Contains(in.Error, "exited before it was ready: exit status 1") {
		t.Errorf("got %+v, want restarts >= 2 and error %q...exit status 1", in, want)
	}
	if n := len(h.set.Backends()); n != 0 {
		t.Errorf("%d backends in rotation, want none", n)
	}
}

func TestExecErrorIsClear(t *testing.T) {
	cfg := testConfig(t, 1, "normal")
	exe := filepath.Join(t.TempDir(), "web")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Services[0].ExecutablePath = exe
	h := start(t, cfg)
	want := fmt.Sprintf("starting instance web#0 on :%d: exec %s: permission denied", h.svc.StartInstancePort, exe)
	eventually(t, 2*time.Second, "the exec error shows in status", func() bool {
		return h.instances()[0].Error == want
	})
	if !strings.Contains(readLog(t, cfg), want) {
		t.Errorf("log lacks %q", want)
	}
}

func TestHealthCheck(t *testing.T) {
	t.Run("2xx is ready", func(t *testing.T) {
		cfg := testConfig(t, 1, "normal")
		cfg.Services[0].HealthCheck = "/healthz"
		h := start(t, cfg)
		awaitReady(t, h, 5*time.Second)
	})
	t.Run("500 is never ready", func(t *testing.T) {
		cfg := testConfig(t, 1, "health500")
		cfg.Services[0].HealthCheck = "/healthz"
		cfg.Services[0].StartTimeout = time.Second
		h := start(t, cfg)
		deadline := time.Now().Add(2500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if n := len(h.set.Backends()); n != 0 {
				t.Fatalf("%d backends in rotation, want none", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Given up after 1 s and started again: by now, or a moment later
		// on a loaded machine.
		failed := func(in InstanceStatus) bool {
			return in.State != StateReady && in.Restarts >= 1 && strings.Contains(in.Error, "not ready within 1s: health check GET /healthz: 500 Internal Server Error")
		}
		for deadline := time.Now().Add(10 * time.Second); !failed(h.instances()[0]) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if in := h.instances()[0]; !failed(in) {
			t.Errorf("got %+v, want restarts >= 1 and a 500 error", in)
		}
	})
}

func TestEnvironment(t *testing.T) {
	t.Setenv("SUPERVISOR_PARENT_VAR", "inherited")
	cfg := testConfig(t, 2, "normal", "TEST_FOO=bar")
	wd, err := filepath.EvalSymlinks(cfg.Dir) // as getcwd reports it
	if err != nil {
		t.Fatal(err)
	}
	cfg.Services[0].WorkingDir = wd // working_dir, not the executable's folder
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)

	var got struct {
		Env []string
		Wd  string
	}
	addr := fmt.Sprintf("127.0.0.1:%d", h.svc.StartInstancePort+1)
	if err := json.Unmarshal([]byte(get(t, addr, "/env")), &got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"SUPERVISOR_PARENT_VAR=inherited",
		"TEST_FOO=bar",
		"SMOOTHSERVE_SERVICE=web",
		fmt.Sprintf("SMOOTHSERVE_PORT=%d", h.svc.StartInstancePort+1),
		"SMOOTHSERVE_SLOT=1",
	} {
		if !slices.Contains(got.Env, want) {
			t.Errorf("child environment lacks %s", want)
		}
	}
	if want := wd; got.Wd != want {
		t.Errorf("child working directory %s, want %s", got.Wd, want)
	}
}

func TestLogFile(t *testing.T) {
	cfg := testConfig(t, 1, "normal", "CHILD_PRINT=hello")
	logPath := filepath.Join(cfg.LogDir, "web.log")
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, []byte("an earlier line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	pid, port := h.instances()[0].Pid, h.svc.StartInstancePort
	eventually(t, 2*time.Second, "the child's output reaches the log", func() bool {
		return strings.Contains(readLog(t, cfg), "err: hello")
	})
	if err := h.stop(t, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}

	log := readLog(t, cfg)
	for _, want := range []string{
		"out: hello\n",
		"err: hello\n",
		fmt.Sprintf("smoothserve: web#0 pid %d started on :%d\n", pid, port),
		fmt.Sprintf("smoothserve: web#0 pid %d ready on :%d\n", pid, port),
		fmt.Sprintf("smoothserve: web#0 pid %d stopping\n", pid),
		fmt.Sprintf("smoothserve: web#0 pid %d stopped: signal: terminated\n", pid),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q; log:\n%s", want, log)
		}
	}
	if !strings.HasPrefix(log, "an earlier line\n") {
		t.Errorf("log was not appended to:\n%s", log)
	}
}

func TestPortInUse(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	port := cfg.Services[0].StartInstancePort
	ln, err := netListen(port)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := start(t, cfg)

	want := fmt.Sprintf("starting instance web#0 on :%d: port %d is in use by another process", port, port)
	eventually(t, 10*time.Second, "slot 0 reports the busy port, slot 1 is ready", func() bool {
		in := h.instances()
		return in[0].Error == want && in[1].State == StateReady
	})
	if !strings.Contains(readLog(t, cfg), want) {
		t.Errorf("log lacks %q", want)
	}
	select {
	case err := <-h.done:
		t.Fatalf("Run returned %v", err)
	default:
	}

	ln.Close()
	awaitReady(t, h, 5*time.Second)
}

func TestWaitReadySaysWhatIsMissing(t *testing.T) {
	cfg := testConfig(t, 1, "nolisten")
	h := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := h.sup.WaitReady(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "web: 0 of 1 ready") {
		t.Errorf("WaitReady = %v, want deadline exceeded naming web: 0 of 1 ready", err)
	}
	// Started (a pid) by now, or a moment later on a loaded machine; never
	// ready, it stays starting until StartTimeout (5 s).
	eventually(t, 4*time.Second, "web#0 starting with a pid", func() bool {
		in := h.instances()[0]
		return in.State == StateStarting && in.Pid > 0
	})
}

func TestDisabledServiceIsNotStarted(t *testing.T) {
	cfg := testConfig(t, 1, "normal")
	off := *cfg.Services[0]
	off.Name, off.Enabled = "off", false
	cfg.Services = append(cfg.Services, &off)
	h := start(t, cfg)
	awaitReady(t, h, 5*time.Second)
	st := h.sup.Status()
	if len(st) != 2 || st[1].Name != "off" || st[1].State != ServiceStopped || len(st[1].Instances) != 0 {
		t.Errorf("Status() = %+v, want off stopped without instances", st)
	}
	if _, err := os.Stat(filepath.Join(cfg.LogDir, "off.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("disabled service has a log file (%v)", err)
	}
}

func TestStateNames(t *testing.T) {
	for _, tc := range []struct {
		s    State
		want string
	}{
		{StateStarting, "starting"},
		{StateReady, "ready"},
		{StateDraining, "draining"},
		{StateStopping, "stopping"},
		{StateBackoff, "backoff"},
		{StateUnhealthy, "unhealthy"},
		{State(42), "State(42)"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("State(%d).String() = %q, want %q", int(tc.s), got, tc.want)
		}
	}

	st := ServiceStatus{Name: "web", Hosts: []string{"a"}, Port: 80, State: ServiceRunning,
		Instances: []InstanceStatus{{Slot: 1, Port: 8001, Pid: 7, State: StateBackoff, Inflight: 2, Served: 3, Restarts: 4}}}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"web","hosts":["a"],"port":80,"state":"running","instances":[{"slot":1,"port":8001,"pid":7,"state":"backoff","inflight":2,"served":3,"restarts":4}]}`
	if string(data) != want {
		t.Errorf("json:\n got %s\nwant %s", data, want)
	}
	var back ServiceStatus
	if err := json.Unmarshal(data, &back); err != nil || back.Instances[0].State != StateBackoff {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}
