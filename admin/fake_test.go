package admin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"smoothserve/control/api"
	"smoothserve/internal/syncbuf"
)

// fakeDaemon answers Status with status and records every other call;
// err, when set, is what the actions return.
type fakeDaemon struct {
	mu     sync.Mutex
	status api.Status
	calls  []string
	err    error
}

func (f *fakeDaemon) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeDaemon) gotCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeDaemon) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeDaemon) BriefStatus() api.Status { return f.Status() }

func (f *fakeDaemon) Restart(ctx context.Context, name, trigger string) ([]*api.Rollout, error) {
	if err := f.record("restart " + name + " by " + trigger); err != nil {
		return nil, err
	}
	now := time.Now()
	return []*api.Rollout{{Service: name, Trigger: trigger, Outcome: api.RolloutOK, StartedAt: now.Add(-2 * time.Second),
		FinishedAt: now, Instances: []api.RolledInstance{{Slot: 0}, {Slot: 1}}}}, nil
}

func (f *fakeDaemon) StopService(ctx context.Context, name string) error {
	return f.record("stop " + name)
}

func (f *fakeDaemon) StartService(ctx context.Context, name string) error {
	return f.record("start " + name)
}

func (f *fakeDaemon) Shutdown(force bool) { f.record(fmt.Sprint("shutdown force=", force)) }

func (f *fakeDaemon) Upgrade(ctx context.Context) (int, error) {
	if err := f.record("upgrade"); err != nil {
		return 0, err
	}
	return 4343, nil
}

func (f *fakeDaemon) Reload(ctx context.Context) (*api.ReloadResult, error) {
	return nil, f.record("reload")
}

func (f *fakeDaemon) Drain(ctx context.Context, wait bool, timeout time.Duration) (api.HostStatus, error) {
	return api.HostStatus{State: api.HostDraining}, f.record("drain")
}

func (f *fakeDaemon) Undrain() api.HostStatus {
	f.record("undrain")
	return api.HostStatus{State: api.HostServing}
}

func (f *fakeDaemon) DrainInstance(ctx context.Context, name string, slot int, force bool) error {
	return f.record(fmt.Sprintf("drain %s#%d", name, slot))
}

func (f *fakeDaemon) UndrainInstance(ctx context.Context, name string, slot int) error {
	return f.record(fmt.Sprintf("undrain %s#%d", name, slot))
}

// fixture is a daemon with a running service of two instances (one
// measured, as the daemon measures them; one in backoff, its error naming
// the binary) and a stopped one.
func fixture() api.Status {
	t0 := time.Now().Add(-90 * time.Minute).UTC().Truncate(time.Second)
	return api.Status{
		Pid: 4242, StartedAt: t0, Config: "/srv/app/smoothserve.yaml",
		Services: []api.ServiceStatus{{
			Name: "web", Hosts: []string{"web.test", "www.web.test"}, Port: 8085, State: api.ServiceRunning,
			Instances: []api.InstanceStatus{
				{Slot: 0, Port: 8086, Pid: 5151, State: api.StateReady, Inflight: 3, Served: 12345, Restarts: 1,
					StartedAt: t0.Add(time.Minute), CPUPercent: 12.3, RSSBytes: 50 << 20},
				{Slot: 1, Port: 8087, State: api.StateBackoff, Restarts: 7,
					Error: "fork/exec /srv/app/bin/web-server: permission denied"},
			},
			LastRollout: &api.Rollout{Service: "web", Trigger: "/srv/app/bin/web-server", Strategy: "surge",
				StartedAt: t0.Add(time.Hour), FinishedAt: t0.Add(time.Hour + 3*time.Second), Outcome: api.RolloutFailed,
				Error: "web#1 not ready within 30s", Instances: []api.RolledInstance{{Slot: 0, OldPid: 1, NewPid: 5151}}},
		}, {
			Name: "api", Hosts: []string{"api.test"}, Port: 9000, State: api.ServiceStopped,
			Instances: []api.InstanceStatus{},
		}},
	}
}

// Credentials of the tests' users, hashed at the lowest cost: the race
// detector makes bcrypt slow.
const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

var testUsers = sync.OnceValue(func() []User {
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	h2, _ := bcrypt.GenerateFromPassword([]byte("bob's password"), bcrypt.MinCost)
	return []User{{Name: testUser, Hash: string(h)}, {Name: "bob", Hash: string(h2)}}
})

// env is a handler of a fake daemon, with its log.
type env struct {
	t   *testing.T
	d   *fakeDaemon
	h   http.Handler
	log *syncbuf.Buffer
}

// newEnv serves a fake daemon of fixture() for users.
func newEnv(t *testing.T, users []User) *env {
	e := &env{t: t, d: &fakeDaemon{status: fixture()}, log: &syncbuf.Buffer{}}
	e.h = New(Options{Daemon: e.d, Users: users, Logger: slog.New(slog.NewTextHandler(e.log, nil))})
	return e
}

// do serves one request and returns its response and body.
func (e *env) do(r *http.Request) (*http.Response, string) {
	e.t.Helper()
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// arriving is r as it comes to the listener's address addr.
func arriving(r *http.Request, addr string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))))
}

// get is a GET of path, as user with password when user is set.
func (e *env) get(path, user, password string) (*http.Response, string) {
	r := httptest.NewRequest("GET", "http://admin.test"+path, nil)
	if user != "" {
		r.SetBasicAuth(user, password)
	}
	return e.do(r)
}

// tokenRE finds the CSRF token in a page.
var tokenRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token loads the page as the test user and returns the token it embeds.
func (e *env) token() string {
	e.t.Helper()
	res, body := e.get("/", testUser, testPassword)
	m := tokenRE.FindStringSubmatch(body)
	if res.StatusCode != 200 || m == nil {
		e.t.Fatalf("GET / as %s: %s, no token in:\n%s", testUser, res.Status, body)
	}
	return m[1]
}

// post builds an action request from this server's page: the test user's
// credentials, Origin and token; mutate takes some away.
func post(path, token string, mutate ...func(*http.Request)) *http.Request {
	r := httptest.NewRequest("POST", "http://admin.test"+path, nil)
	r.SetBasicAuth(testUser, testPassword)
	r.Header.Set("Origin", "http://admin.test")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("X-CSRF-Token", token)
	for _, m := range mutate {
		m(r)
	}
	return r
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(body, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, body)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if strings.Contains(body, u) {
			t.Errorf("%s has %q:\n%s", what, u, body)
		}
	}
}
