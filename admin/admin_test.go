package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"smoothserve/control"
	"smoothserve/control/api"
	"smoothserve/control/client"
)

func TestPageShowsServicesAndInstances(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/", "/fragment"} {
		res, body := e.get(path, "", "")
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s: %s %s", path, res.Status, res.Header.Get("Content-Type"))
		}
		mustContain(t, "GET "+path, body,
			"pid <b>4242</b>", "up <b>1h30m</b>",
			"web", "web.test, www.web.test", "port 8085", "instance ports 8086, 8087", "st-running",
			`<td class="n">5151</td>`, `<td class="n">12345</td>`, "st-ready", "st-backoff", `<td class="n">7</td>`,
			"permission denied", "…/web-server", // the instance's error, its path shortened
			"last rollout: …/web-server,", "o-failed", "in 3.0s, 1 replaced: web#1 not ready within 30s",
			"api", "st-stopped", "no instances",
			"read-only: set AdminAuth to allow actions")
		mustNotContain(t, "GET "+path, body, "/srv/app", "<form", `name="csrf"`)
	}
	_, page := e.get("/", "", "")
	mustContain(t, "the page", page, "<!doctype html>", "setInterval(refresh, 2000)", "fetch('/fragment'")
	if calls := e.d.gotCalls(); len(calls) != 0 {
		t.Errorf("GETs made calls %v", calls)
	}
}

func TestPageCSPAllowsOnlyItsOwnScript(t *testing.T) {
	e := newEnv(t, nil)
	res, body := e.get("/", "", "")
	csp := res.Header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([^']+)'`).FindStringSubmatch(csp)
	if m == nil || !strings.Contains(csp, "style-src 'nonce-"+m[1]+"'") {
		t.Fatalf("CSP %q: no script and style nonce", csp)
	}
	if nonce := m[1]; !strings.Contains(body, `<script nonce="`+nonce+`">`) || !strings.Contains(body, `<style nonce="`+nonce+`">`) {
		t.Errorf("CSP %q does not name the page's script and style nonce", csp)
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

// TestStatusJSONIsSmoothtools compares /api/status with what the control
// socket answers (what `smoothtool status --json` prints) for one Status.
func TestStatusJSONIsSmoothtools(t *testing.T) {
	e := newEnv(t, nil)
	res, body := e.get("/api/status", "", "")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/status: %s %s", res.Status, res.Header.Get("Content-Type"))
	}
	var got api.Status
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if want := e.d.Status(); !reflect.DeepEqual(got, want) {
		t.Errorf("GET /api/status decodes to\n%+v\nwant\n%+v", got, want)
	}

	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(e.d, nil)
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := client.Dial(sock).StatusJSON(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != body {
		t.Errorf("GET /api/status:\n%s\nthe control socket's:\n%s", body, raw)
	}
}

func TestActionWithoutCredentials(t *testing.T) {
	e := newEnv(t, testUsers())
	token := e.token()
	for name, mutate := range map[string]func(*http.Request){
		"no credentials":        func(r *http.Request) { r.Header.Del("Authorization") },
		"wrong password":        func(r *http.Request) { r.SetBasicAuth(testUser, "wrong") },
		"unknown user":          func(r *http.Request) { r.SetBasicAuth("mallory", testPassword) },
		"bob, alice's password": func(r *http.Request) { r.SetBasicAuth("bob", testPassword) },
	} {
		res, body := e.do(post("/api/services/web/restart", token, mutate))
		if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: %s, WWW-Authenticate %q: %s", name, res.Status, res.Header.Get("WWW-Authenticate"), body)
		}
		mustContain(t, name, body, `"ok": false`)
	}
	logged := e.log.String()
	mustContain(t, "the log", logged, `msg="admin: failed login" user=alice client=192.0.2.1:1234`,
		`msg="admin: failed login" user=mallory client=192.0.2.1:1234`)
	if calls := e.d.gotCalls(); len(calls) != 0 {
		t.Errorf("refused actions made calls %v", calls)
	}
}

func TestActionWithoutValidToken(t *testing.T) {
	e := newEnv(t, testUsers())
	token := e.token()
	bobs := newEnv(t, testUsers()).token() // another process's token
	for name, r := range map[string]*http.Request{
		"no token":            post("/api/services/web/restart", ""),
		"wrong token":         post("/api/services/web/restart", token[:len(token)-2]+"xx"),
		"another process's":   post("/api/services/web/restart", bobs),
		"bob with alice's":    post("/api/services/web/restart", token, func(r *http.Request) { r.SetBasicAuth("bob", "bob's password") }),
		"token in the query":  post("/api/services/web/restart?csrf="+token, ""),
		"stop, no token":      post("/api/services/web/stop", ""),
		"upgrade, no token":   post("/api/upgrade", ""),
		"start, wrong token":  post("/api/services/api/start", "x"),
		"restart, empty form": post("/api/services/web/restart", "", withForm("csrf=")),
	} {
		res, body := e.do(r)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s: %s", name, res.Status, body)
		}
		mustContain(t, name, body, `"ok": false`, "CSRF token")
	}
	if calls := e.d.gotCalls(); len(calls) != 0 {
		t.Errorf("refused actions made calls %v", calls)
	}
}

func TestActionFromAnotherOrigin(t *testing.T) {
	e := newEnv(t, testUsers())
	token := e.token()
	for name, mutate := range map[string]func(*http.Request){
		"other origin":     func(r *http.Request) { r.Header.Set("Origin", "http://evil.test") },
		"other port":       func(r *http.Request) { r.Header.Set("Origin", "http://admin.test:8080") },
		"origin null":      func(r *http.Request) { r.Header.Set("Origin", "null") },
		"no origin":        func(r *http.Request) { r.Header.Del("Origin") },
		"other referer":    func(r *http.Request) { r.Header.Del("Origin"); r.Header.Set("Referer", "http://evil.test/admin.test/") },
		"cross-site fetch": func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") },
		"same-site fetch":  func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") },
	} {
		res, body := e.do(post("/api/services/web/restart", token, mutate))
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s: %s", name, res.Status, body)
		}
		mustContain(t, name, body, `"ok": false`)
	}
	if calls := e.d.gotCalls(); len(calls) != 0 {
		t.Errorf("refused actions made calls %v", calls)
	}
	// A Referer of this server will do without Origin.
	res, body := e.do(post("/api/services/web/restart", token, func(r *http.Request) {
		r.Header.Del("Origin")
		r.Header.Set("Referer", "http://admin.test/")
	}))
	if res.StatusCode != 200 {
		t.Errorf("same-origin Referer: %s: %s", res.Status, body)
	}
}

func TestGetNeverActs(t *testing.T) {
	e := newEnv(t, testUsers())
	token := e.token()
	for _, path := range []string{"/api/services/web/restart", "/api/services/web/stop", "/api/services/api/start", "/api/upgrade"} {
		for _, method := range []string{"GET", "HEAD", "PUT", "DELETE"} {
			r := post(path+"?csrf="+token, token)
			r.Method = method
			res, body := e.do(r)
			if res.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(res.Header.Get("Allow"), "POST") {
				t.Errorf("%s %s: %s (Allow %q): %s", method, path, res.Status, res.Header.Get("Allow"), body)
			}
		}
	}
	for _, path := range []string{"/", "/fragment", "/api/status", "/login", "/metrics", "/nothing"} {
		e.get(path, testUser, testPassword)
		e.get(path, "", "")
	}
	if calls := e.d.gotCalls(); len(calls) != 0 {
		t.Errorf("GETs made calls %v", calls)
	}
}

func TestActionsCarriedOut(t *testing.T) {
	e := newEnv(t, testUsers())
	token := e.token()
	for _, c := range []struct {
		path, call, message string
	}{
		{"/api/services/web/restart", "restart web by admin page restart by alice", "web ok, 2 replaced in 2.0s"},
		{"/api/services/web/stop", "stop web", "web stopped"},
		{"/api/services/api/start", "start api", "api started"},
		{"/api/upgrade", "upgrade", "→ 4343"},
	} {
		before := len(e.d.gotCalls())
		res, body := e.do(post(c.path, token))
		if res.StatusCode != 200 {
			t.Errorf("POST %s: %s: %s", c.path, res.Status, body)
		}
		var got result
		if err := json.Unmarshal([]byte(body), &got); err != nil || !got.OK || !strings.Contains(got.Message, c.message) {
			t.Errorf("POST %s: %s (%v), want ok and message with %q", c.path, body, err, c.message)
		}
		if calls := e.d.gotCalls()[before:]; !slices.Equal(calls, []string{c.call}) {
			t.Errorf("POST %s made calls %q, want %q", c.path, calls, c.call)
		}
	}
	// The form without script: the token as a field, a Referer.
	res, body := e.do(post("/api/services/web/restart", "", withForm("csrf="+token), func(r *http.Request) {
		r.Header.Del("Origin")
		r.Header.Set("Referer", "http://admin.test/")
	}))
	if res.StatusCode != 200 {
		t.Errorf("form POST: %s: %s", res.Status, body)
	}
	mustContain(t, "the log", e.log.String(), `msg="admin: restart" service=web user=alice client=192.0.2.1:1234`)
}

func TestActionErrors(t *testing.T) {
	e := newEnv(t, testUsers())
	token := e.token()
	for _, c := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w: nope", api.ErrUnknownService), 404},
		{fmt.Errorf("web: %w", api.ErrDisabled), 409},
		{fmt.Errorf("exec /srv/app/bin/web: permission denied"), 500},
	} {
		e.d.mu.Lock()
		e.d.err = c.err
		e.d.mu.Unlock()
		res, body := e.do(post("/api/services/web/restart", token))
		var got result
		json.Unmarshal([]byte(body), &got)
		if res.StatusCode != c.code || got.OK || got.Error == "" || strings.Contains(got.Error, "/srv/") {
			t.Errorf("restart failing with %v: %s: %s, want %d with the error, paths shortened", c.err, res.Status, body, c.code)
		}
	}
}

func TestReadOnlyRefusesActions(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/api/services/web/restart", "/api/services/web/stop", "/api/services/api/start", "/api/upgrade"} {
		res, body := e.do(post(path, "anything"))
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s: %s", path, res.Status)
		}
		mustContain(t, "POST "+path, body, readOnlyNote)
	}
	if res, _ := e.get("/login", testUser, testPassword); res.StatusCode != http.StatusForbidden {
		t.Errorf("GET /login read-only: %s", res.Status)
	}
	if calls := e.d.gotCalls(); len(calls) != 0 {
		t.Errorf("read-only made calls %v", calls)
	}
}

func TestPageByViewer(t *testing.T) {
	e := newEnv(t, testUsers())
	_, anon := e.get("/", "", "")
	mustContain(t, "the anonymous page", anon, `<a href="/login">log in</a>`)
	mustNotContain(t, "the anonymous page", anon, "<form", `name="csrf"`, readOnlyNote)

	_, page := e.get("/", testUser, testPassword)
	mustContain(t, "alice's page", page, "signed in as <b>alice</b>",
		`action="/api/services/web/restart"`, `action="/api/services/web/stop"`, `action="/api/services/api/start"`,
		`action="/api/upgrade"`, `name="csrf" value="`+e.token()+`"`)
	mustNotContain(t, "alice's page", page, `action="/api/services/api/restart"`, `action="/api/services/web/start"`)

	if res, _ := e.get("/", testUser, "wrong"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET / with a wrong password: %s, want 401", res.Status)
	}
	res, _ := e.get("/login", "", "")
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET /login without credentials: %s, want 401 with a challenge", res.Status)
	}
	res, _ = e.get("/login", testUser, testPassword)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Errorf("GET /login: %s to %q, want 303 to /", res.Status, res.Header.Get("Location"))
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	if res, _ := e.get("/metrics", "", ""); res.StatusCode != 404 {
		t.Errorf("GET /metrics without a handler: %s", res.Status)
	}
	e.h = New(Options{Daemon: e.d, Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "smoothserve_up 1")
	})})
	if res, body := e.get("/metrics", "", ""); res.StatusCode != 200 || body != "smoothserve_up 1\n" {
		t.Errorf("GET /metrics: %s %q", res.Status, body)
	}
	if res, _ := e.get("/nothing", "", ""); res.StatusCode != 404 {
		t.Errorf("GET /nothing: %s", res.Status)
	}
}

// withForm makes the request a form post of body.
func withForm(body string) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Del("X-CSRF-Token")
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r2 := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Body, r.ContentLength = r2.Body, r2.ContentLength
	}
}

// The instances' CPU and memory are the daemon's: /api/status has them as
// it sent them, and the page shows them in two columns, which a status
// without them has not.
func TestStatusWithUsage(t *testing.T) {
	e := newEnv(t, nil)
	_, body := e.get("/api/status", "", "")
	var got struct {
		Services []struct {
			Instances []map[string]any `json:"instances"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	in := got.Services[0].Instances
	if in[0]["cpu_percent"] != 12.3 || in[0]["rss_bytes"] != float64(50<<20) {
		t.Errorf("instance 0: %v, want cpu_percent 12.3 and rss_bytes %d", in[0], 50<<20)
	}
	if _, ok := in[1]["cpu_percent"]; ok {
		t.Errorf("instance 1 (no process) has usage: %v", in[1])
	}

	_, page := e.get("/", "", "")
	mustContain(t, "the page", page, "<th>cpu</th><th>memory</th>", `<td class="n">12.3%</td><td class="n">50.0 MiB</td>`,
		`<td class="n">-</td><td class="n">-</td></tr>`)

	st := fixture()
	st.Services[0].Instances[0].CPUPercent, st.Services[0].Instances[0].RSSBytes = 0, 0
	e.d.mu.Lock()
	e.d.status = st
	e.d.mu.Unlock()
	_, page = e.get("/", "", "")
	mustNotContain(t, "the page without usage", page, "<th>cpu</th>", "%</td>")
	_, body = e.get("/api/status", "", "")
	mustNotContain(t, "/api/status without usage", body, "cpu_percent", "rss_bytes")
}

func TestALoopbackListenerRefusesOtherHostNames(t *testing.T) {
	srv := httptest.NewServer(New(Options{Daemon: &fakeDaemon{}}))
	defer srv.Close()
	for host, want := range map[string]int{"": 200, "localhost:9180": 200, "127.0.0.1": 200, "[::1]:9180": 200, "rebound.example:9180": 421} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/status", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// GET /health answers a load balancer's check, whatever its Host: 200
// serving, 503 with the state otherwise; nothing without Options.Health.
func TestHealth(t *testing.T) {
	serving, state := true, "serving"
	srv := httptest.NewServer(New(Options{Daemon: &fakeDaemon{}, Health: func() (bool, string) { return serving, state }}))
	defer srv.Close()
	check := func(host string, wantCode int, wantBody string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/health", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode || string(b) != wantBody || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Host %q: %d %q (Cache-Control %q), want %d %q", host, resp.StatusCode, b, resp.Header.Get("Cache-Control"), wantCode, wantBody)
		}
	}
	check("rebound.example", 200, "serving\n")
	serving, state = false, "draining"
	check("127.0.0.1", 503, "draining\n")
	state = "stopping"
	check("lb.internal:9180", 503, "stopping\n")

	bare := httptest.NewServer(New(Options{Daemon: &fakeDaemon{}}))
	defer bare.Close()
	resp, err := http.Get(bare.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("without Health: %d, want 404", resp.StatusCode)
	}
}

// TestReadingFromAnotherMachineNeedsCredentials: with users, every GET but
// /health that came to a non-loopback address of the listener (0.0.0.0
// or a LAN address, AdminAddr reachable from other machines) needs valid
// credentials; one that came to a loopback address does not, nor does
// any without users.
func TestReadingFromAnotherMachineNeedsCredentials(t *testing.T) {
	e := newEnv(t, nil)
	e.h = New(Options{Daemon: e.d, Users: testUsers(), Logger: slog.New(slog.DiscardHandler),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "smoothserve_up 1") }),
		Health:  func() (bool, string) { return true, "serving" }})
	get := func(addr, path, user, password string) int {
		r := httptest.NewRequest("GET", "http://admin.test"+path, nil)
		if addr == "127.0.0.1:9180" || addr == "[::1]:9180" {
			r.Host = "localhost:9180"
		}
		if user != "" {
			r.SetBasicAuth(user, password)
		}
		res, _ := e.do(arriving(r, addr))
		return res.StatusCode
	}
	for _, path := range []string{"/", "/fragment", "/api/status", "/metrics"} {
		for _, addr := range []string{"192.0.2.10:9180", "[2001:db8::1]:9180"} {
			if code := get(addr, path, "", ""); code != 401 {
				t.Errorf("GET %s at %s without credentials: %d, want 401", path, addr, code)
			}
			if code := get(addr, path, testUser, "wrong"); code != 401 {
				t.Errorf("GET %s at %s with a wrong password: %d, want 401", path, addr, code)
			}
			if code := get(addr, path, testUser, testPassword); code != 200 {
				t.Errorf("GET %s at %s with credentials: %d, want 200", path, addr, code)
			}
		}
		for _, addr := range []string{"127.0.0.1:9180", "[::1]:9180"} {
			if code := get(addr, path, "", ""); code != 200 {
				t.Errorf("GET %s at %s (this machine) without credentials: %d, want 200", path, addr, code)
			}
		}
	}
	if code := get("192.0.2.10:9180", "/health", "", ""); code != 200 {
		t.Errorf("GET /health from another machine: %d, want 200 (a load balancer's check)", code)
	}
	e.h = New(Options{Daemon: e.d})
	if code := get("192.0.2.10:9180", "/api/status", "", ""); code != 200 {
		t.Errorf("without users, GET /api/status from another machine: %d, want 200 (read-only)", code)
	}
}
