package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"smoothserve/control/api"
	"smoothserve/control/client"
)

// fakeDaemon records the calls it gets and answers with err (and
// rollouts); block, when set, makes operations wait for their context.
type fakeDaemon struct {
	mu       sync.Mutex
	calls    []string
	err      error
	rollouts []*api.Rollout
	block    bool
	entered  chan struct{} // closed by a blocked operation once it waits
	ended    chan error    // a blocked operation's ctx.Err (nil: released)
	release  chan struct{} // closing it ends a blocked operation without error
}

var fixedStatus = api.Status{
	Pid:       4242,
	StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	Config:    "/srv/smoothserve.yaml",
	Services: []api.ServiceStatus{{
		Name: "web", Hosts: []string{"web.test"}, Port: 8085, State: api.ServiceRunning,
		Instances: []api.InstanceStatus{{Slot: 0, Port: 8086, Pid: 4243, State: api.StateReady,
			Inflight: 1, Served: 10, StartedAt: time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC)}},
	}},
}

func (f *fakeDaemon) record(call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	return f.err
}

func (f *fakeDaemon) wait(ctx context.Context) {
	if !f.block {
		return
	}
	close(f.entered)
	select {
	case <-ctx.Done():
		f.ended <- ctx.Err()
	case <-f.release:
		f.ended <- nil
	}
}

func (f *fakeDaemon) Status() api.Status { f.record("status"); return fixedStatus }

func (f *fakeDaemon) BriefStatus() api.Status { f.record("brief status"); return fixedStatus }

func (f *fakeDaemon) Restart(ctx context.Context, name, trigger string) ([]*api.Rollout, error) {
	err := f.record("restart " + name + " by " + trigger)
	return f.rollouts, err
}

func (f *fakeDaemon) StopService(ctx context.Context, name string) error {
	err := f.record("stop " + name)
	f.wait(ctx)
	return err
}

func (f *fakeDaemon) StartService(ctx context.Context, name string) error {
	return f.record("start " + name)
}

func (f *fakeDaemon) Shutdown(force bool) { f.record(fmt.Sprint("shutdown force=", force)) }

func (f *fakeDaemon) Upgrade(ctx context.Context) (int, error) {
	f.record("upgrade")
	if f.err != nil {
		return 0, f.err
	}
	return 4343, nil
}

func (f *fakeDaemon) Reload(ctx context.Context) (*api.ReloadResult, error) {
	if err := f.record("reload"); err != nil {
		return nil, err
	}
	return &api.ReloadResult{Services: []api.ServiceChange{{Name: "web", Change: api.ChangeRolled}}}, nil
}

func (f *fakeDaemon) Drain(ctx context.Context, wait bool, timeout time.Duration) (api.HostStatus, error) {
	err := f.record(fmt.Sprintf("drain wait=%v timeout=%v", wait, timeout))
	return api.HostStatus{State: api.HostDraining}, err
}

func (f *fakeDaemon) Undrain() api.HostStatus {
	f.record("undrain")
	return api.HostStatus{State: api.HostServing}
}

func (f *fakeDaemon) DrainInstance(ctx context.Context, name string, slot int, force bool) error {
	return f.record(fmt.Sprintf("drain %s#%d force=%v", name, slot, force))
}

func (f *fakeDaemon) UndrainInstance(ctx context.Context, name string, slot int) error {
	return f.record(fmt.Sprintf("undrain %s#%d", name, slot))
}

func (f *fakeDaemon) gotCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// serve runs a Server for d on a fresh socket and returns a client of it.
func serve(t *testing.T, d Daemon) (*client.Client, string) {
	t.Helper()
	path := socketPath(t)
	ln := mustListen(t, path)
	srv := NewServer(d, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return client.Dial(path), path
}

func TestRoutes(t *testing.T) {
	failed := []*api.Rollout{{Service: "web", Outcome: api.RolloutFailed, LogTail: []string{"boom"}}}
	tests := []struct {
		name      string
		daemonErr error
		rollouts  []*api.Rollout
		call      func(c *client.Client) ([]*api.Rollout, error)
		wantCall  string
		wantCode  int // 0: success
		wantIs    error
		wantRolls int
	}{
		{"restart", nil, failed[:0], func(c *client.Client) ([]*api.Rollout, error) { return c.Restart(ctx(), "web") },
			"restart web by smoothtool restart", 0, nil, 0},
		{"restart all", nil, []*api.Rollout{{Service: "a"}, {Service: "b"}}, func(c *client.Client) ([]*api.Rollout, error) { return c.Restart(ctx(), "all") },
			"restart all by smoothtool restart", 0, nil, 2},
		{"restart fails", errors.New("web#1: rollout failed"), failed, func(c *client.Client) ([]*api.Rollout, error) { return c.Restart(ctx(), "web") },
			"restart web by smoothtool restart", 500, nil, 1},
		{"restart unknown", fmt.Errorf("nope: %w", api.ErrUnknownService), nil, func(c *client.Client) ([]*api.Rollout, error) { return c.Restart(ctx(), "nope") },
			"restart nope by smoothtool restart", 404, api.ErrUnknownService, 0},
		{"stop", nil, nil, func(c *client.Client) ([]*api.Rollout, error) { return nil, c.Stop(ctx(), "web") }, "stop web", 0, nil, 0},
		{"stop unknown", api.ErrUnknownService, nil, func(c *client.Client) ([]*api.Rollout, error) { return nil, c.Stop(ctx(), "x") },
			"stop x", 404, api.ErrUnknownService, 0},
		{"start", nil, nil, func(c *client.Client) ([]*api.Rollout, error) { return nil, c.Start(ctx(), "all") }, "start all", 0, nil, 0},
		{"start disabled", fmt.Errorf("web: %w", api.ErrDisabled), nil, func(c *client.Client) ([]*api.Rollout, error) { return nil, c.Start(ctx(), "web") },
			"start web", 409, api.ErrDisabled, 0},
		{"start fails", errors.New("web#0 not ready"), nil, func(c *client.Client) ([]*api.Rollout, error) { return nil, c.Start(ctx(), "web") },
			"start web", 500, nil, 0},
		{"shutdown", nil, nil, func(c *client.Client) ([]*api.Rollout, error) { return nil, c.Shutdown(ctx(), false) }, "shutdown force=false", 0, nil, 0},
		{"shutdown force", nil, nil, func(c *client.Client) ([]*api.Rollout, error) { return nil, c.Shutdown(ctx(), true) }, "shutdown force=true", 0, nil, 0},
		{"upgrade", nil, nil, func(c *client.Client) ([]*api.Rollout, error) {
			res, err := c.Upgrade(ctx())
			if err == nil && (res.NewPid != 4343 || res.OldPid != os.Getpid()) {
				err = fmt.Errorf("upgrade result %+v, want new pid 4343, old pid %d", res, os.Getpid())
			}
			return nil, err
		}, "upgrade", 0, nil, 0},
		{"reload", nil, nil, func(c *client.Client) ([]*api.Rollout, error) {
			res, err := c.Reload(ctx())
			if err == nil && (len(res.Services) != 1 || res.Services[0] != api.ServiceChange{Name: "web", Change: api.ChangeRolled}) {
				err = fmt.Errorf("reload result %+v, want web rolled", res)
			}
			return nil, err
		}, "reload", 0, nil, 0},
		{"reload invalid", errors.New("configuration is invalid"), nil, func(c *client.Client) ([]*api.Rollout, error) {
			_, err := c.Reload(ctx())
			return nil, err
		}, "reload", 500, nil, 0},
		{"upgrade failed", errors.New("the new smoothserve did not take over: child exited"), nil, func(c *client.Client) ([]*api.Rollout, error) {
			_, err := c.Upgrade(ctx())
			return nil, err
		}, "upgrade", 500, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDaemon{err: tt.daemonErr, rollouts: tt.rollouts}
			c, _ := serve(t, d)
			rollouts, err := tt.call(c)
			if got := d.gotCalls(); !reflect.DeepEqual(got, []string{tt.wantCall}) {
				t.Errorf("daemon calls %q, want %q", got, tt.wantCall)
			}
			if len(rollouts) != tt.wantRolls {
				t.Errorf("%d rollouts, want %d: %v", len(rollouts), tt.wantRolls, rollouts)
			}
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Code != tt.wantCode || ae.Msg != tt.daemonErr.Error() {
				t.Fatalf("error %#v, want an APIError %d %q", err, tt.wantCode, tt.daemonErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}

func ctx() context.Context { return context.Background() }

func TestStatus(t *testing.T) {
	c, _ := serve(t, &fakeDaemon{})
	st, err := c.Status(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*st, fixedStatus) {
		t.Errorf("Status = %+v, want %+v", *st, fixedStatus)
	}
	raw, err := c.StatusJSON(ctx())
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Pid       *int              `json:"pid"`
		StartedAt *string           `json:"started_at"`
		Services  []json.RawMessage `json:"services"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Pid == nil || m.StartedAt == nil || len(m.Services) != 1 {
		t.Fatalf("status JSON %s: %v", raw, err)
	}
	for _, key := range []string{`"name"`, `"hosts"`, `"port"`, `"state"`, `"instances"`, `"slot"`, `"pid"`,
		`"inflight"`, `"served"`, `"restarts"`, `"started_at"`, `"ready"`} {
		if !strings.Contains(string(m.Services[0]), key) {
			t.Errorf("service JSON lacks %s: %s", key, m.Services[0])
		}
	}
}

// A status without usage is the daemon's BriefStatus, and only it: the
// instances are not measured for a caller that shows no CPU or memory.
func TestBriefStatusDoesNotMeasure(t *testing.T) {
	d := &fakeDaemon{}
	c, _ := serve(t, d)
	st, err := c.BriefStatus(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*st, fixedStatus) {
		t.Errorf("BriefStatus = %+v, want %+v", *st, fixedStatus)
	}
	if _, err := c.Status(ctx()); err != nil {
		t.Fatal(err)
	}
	if got, want := d.gotCalls(), []string{"brief status", "status"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the daemon was asked %q, want %q", got, want)
	}
}

// TestErrorBodies looks at what any HTTP client gets.
func TestErrorBodies(t *testing.T) {
	_, sock := serve(t, &fakeDaemon{err: fmt.Errorf("web: %w", api.ErrUnknownService)})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	tests := []struct {
		method, path string
		code         int
		body         string // a substring
	}{
		{"POST", "/v1/services/web/stop", 404, `{` + "\n" + `  "error": "web: unknown service"` + "\n}"},
		{"POST", "/v1/shutdown?force=yes", 400, `"error": "force: want 0 or 1, got yes"`},
		{"GET", "/v1/services/web/stop", 405, "Method Not Allowed"},
		{"POST", "/v1/status", 405, "Method Not Allowed"},
		{"GET", "/v1/status?usage=no", 400, `"error": "usage: want 0 or 1, got \"no\""`},
		{"GET", "/v2/status", 404, "not found"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://smoothserve"+tt.path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.body) {
			t.Errorf("%s %s: %d %q, want %d with %q", tt.method, tt.path, resp.StatusCode, b, tt.code, tt.body)
		}
		if strings.Contains(tt.body, `"error"`) && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type %q, want application/json", tt.method, tt.path, resp.Header.Get("Content-Type"))
		}
	}
}

func TestClientGoneCancelsTheOperation(t *testing.T) {
	d := &fakeDaemon{block: true, entered: make(chan struct{}), ended: make(chan error, 1)}
	c, _ := serve(t, d)
	cctx, cancel := context.WithCancel(ctx())
	errc := make(chan error, 1)
	go func() { errc <- c.Stop(cctx, "web") }()
	<-d.entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Stop after cancel: %v, want context.Canceled", err)
	}
	select {
	case err := <-d.ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("operation's context ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the operation's context was not cancelled when its client went away")
	}
}

func TestShutdownCancelsOperationsPastItsDeadline(t *testing.T) {
	d := &fakeDaemon{block: true, entered: make(chan struct{}), ended: make(chan error, 1)}
	path := socketPath(t)
	ln := mustListen(t, path)
	srv := NewServer(d, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	errc := make(chan error, 1)
	go func() { errc <- client.Dial(path).Stop(ctx(), "web") }()
	<-d.entered

	sctx, cancel := context.WithTimeout(ctx(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with an operation running: %v, want its deadline", err)
	}
	for name, c := range map[string]chan error{"operation": d.ended, "client": errc, "Serve": served} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still running after Shutdown", name)
		}
	}
}

// After StopAccepting (the replaced daemon at an upgrade) an operation in
// progress still gets its answer, Serve returns nil, and nothing more is
// accepted; the socket stays for the daemon that holds it too.
func TestStopAcceptingLetsTheOperationInProgressAnswer(t *testing.T) {
	d := &fakeDaemon{block: true, entered: make(chan struct{}), ended: make(chan error, 1), release: make(chan struct{})}
	path := socketPath(t)
	ln := mustListen(t, path)
	KeepSocket(ln)
	srv := NewServer(d, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	errc := make(chan error, 1)
	go func() { errc <- client.Dial(path).Stop(ctx(), "web") }()
	<-d.entered

	srv.StopAccepting()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after StopAccepting: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running after StopAccepting")
	}
	if _, err := client.Dial(path).Status(ctx()); err == nil {
		t.Error("a status call was answered after StopAccepting")
	}
	close(d.release)
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("the operation in progress: %v, want its answer", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the operation in progress got no answer after StopAccepting")
	}
	sctx, cancel := context.WithTimeout(ctx(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
}
