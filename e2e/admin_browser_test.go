package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"smoothserve/admin"
	"smoothserve/control/api"
	"smoothserve/internal/browsertest"
)

// The admin page's login in this test.
const (
	adminTestUser     = "admin"
	adminTestPassword = "correct horse battery staple"
)

// TestAdminPageInABrowserRestartsOnlyWithCredentialsAndToken: the real
// daemon's admin page, loaded in headless Chromium with Basic credentials,
// shows the instances' pids as the status reports them; its restart button
// rolls the service under the strict load (no request fails), and the page
// shows the rollout's outcome and the new pids. A POST from the page
// without the CSRF token gets 403, one with the token but without
// credentials 401, and a GET of the action URL 405: none of them starts a
// rollout.
func TestAdminPageInABrowserRestartsOnlyWithCredentialsAndToken(t *testing.T) {
	chromium := browsertest.Chromium(t)
	began := time.Now()
	e := newEnv(t, 8)
	addr := "127.0.0.1:" + strconv.Itoa(e.ports.next())
	hash, err := bcrypt.GenerateFromPassword([]byte(adminTestPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	e.writeMain("AdminAddr: " + addr + "\nAdminAuth: ['" + adminTestUser + ":" + string(hash) + "']\n")
	e.service("web", "web.test", 2, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 2, 15*time.Second)
	oldPids := adminWebPids(t, e, addr, "before the restart")
	for _, pid := range oldPids {
		if !isChild(d.pid(), pid) {
			t.Fatalf("pid %d of the status is not a child of smoothserve (%d)", pid, d.pid())
		}
	}
	t.Logf("smoothserve up, web's pids %v, after %v", oldPids, time.Since(began).Round(time.Millisecond))

	load := mixedLoad(e, "web.test")
	t.Cleanup(func() { load.Stop() }) // on a Fatal: Stop may be called again
	loadBegan := time.Now()

	ctx := adminBrowser(t, chromium, adminTestUser, adminTestPassword)
	wait := func(what, expr string, within time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(within))); err != nil {
			rows, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("waited %v for %s (%s): %v\nthe page:\n%s", within, what, expr, err, rows)
		}
	}
	pagePids := func() []string {
		t.Helper()
		return adminEval[[]string](t, ctx, "the page's pids",
			`[...document.querySelectorAll('#service-web tr.instance')].map(tr => tr.cells[2].innerText.trim())`)
	}

	loading := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatalf("loading the admin page: %v", err)
	}
	wait("web's 2 instances", `document.querySelectorAll('#service-web tr.instance').length === 2`, 5*time.Second)
	t.Logf("chromium loaded the admin page in %v", time.Since(loading).Round(time.Millisecond))
	if mode := adminEval[string](t, ctx, "the mode line", `document.querySelector('p.mode').innerText`); !strings.Contains(mode, "signed in as "+adminTestUser) {
		t.Errorf("the page says %q, want signed in as %s", mode, adminTestUser)
	}
	if got, want := adminSorted(pagePids()), adminPidStrings(oldPids); !slices.Equal(got, want) {
		t.Fatalf("the page shows web's pids %v, the status %v", got, want)
	}

	// The restart button.
	time.Sleep(300 * time.Millisecond) // the load is under way
	clicked := time.Now()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#service-web form[action$="/restart"] button`))); err != nil {
		t.Fatalf("clicking web's restart: %v", err)
	}
	wait("the restart's outcome", `(li => li && li.className !== 'pending')(document.querySelector('#outcomes li'))`, 20*time.Second)
	outcomeAfter := time.Since(clicked)
	class := adminEval[string](t, ctx, "the outcome's class", `document.querySelector('#outcomes li').className`)
	outcome := adminEval[string](t, ctx, "the outcome", `document.querySelector('#outcomes li').textContent`)
	t.Logf("the page shows %q (%s) %v after the click", outcome, class, outcomeAfter.Round(time.Millisecond))
	if class != "ok" || !strings.Contains(outcome, "restart web: web ok, 2 replaced") {
		t.Fatalf("the restart's outcome on the page: %q (class %q), want ok with web ok, 2 replaced", outcome, class)
	}

	// The status has the new pids: none of the old, both children of
	// smoothserve, and the rollout the page's, by its user.
	st := adminStatus(t, addr)
	newPids := adminPidsOf(t, st, "after the restart")
	for _, pid := range newPids {
		if slices.Contains(oldPids, pid) {
			t.Errorf("pid %d was not replaced: before %v, after %v", pid, oldPids, newPids)
		}
		if !isChild(d.pid(), pid) {
			t.Errorf("new pid %d is not a child of smoothserve", pid)
		}
	}
	for _, pid := range oldPids {
		if alive(pid) {
			t.Errorf("old pid %d still runs after the rollout", pid)
		}
	}
	ro := adminWebService(t, st).LastRollout
	if ro == nil {
		t.Fatalf("no last_rollout for web after the restart")
	}
	var rolled []int
	for _, in := range ro.Instances {
		rolled = append(rolled, in.NewPid)
		t.Logf("rollout: slot %d pid %d → %d, ready in %d ms", in.Slot, in.OldPid, in.NewPid, in.ReadyMS)
	}
	slices.Sort(rolled)
	if want := admin.Trigger + " by " + adminTestUser; ro.Outcome != api.RolloutOK || ro.Trigger != want || !slices.Equal(rolled, newPids) {
		t.Errorf("last rollout: outcome %q trigger %q new pids %v, want ok, %q, %v", ro.Outcome, ro.Trigger, rolled, want, newPids)
	}
	t.Logf("rollout %s took %v (%s strategy); web's pids %v → %v", ro.Outcome, ro.FinishedAt.Sub(ro.StartedAt).Round(time.Millisecond), ro.Strategy, oldPids, newPids)

	// The page follows: the new pids, and the rollout line.
	var has []string
	for _, p := range adminPidStrings(newPids) {
		has = append(has, "p.includes('"+p+"')")
	}
	wait("the new pids on the page", `(p => p.length === 2 && `+strings.Join(has, " && ")+`)(`+
		`[...document.querySelectorAll('#service-web tr.instance')].map(tr => tr.cells[2].innerText.trim()))`, 5*time.Second)
	t.Logf("the page shows the new pids %v %v after the click", pagePids(), time.Since(clicked).Round(time.Millisecond))
	wait("the rollout line", `(p => p && p.innerText.includes('`+admin.Trigger+` by `+adminTestUser+`') && p.querySelector('.outcome').innerText === 'ok')(document.querySelector('#service-web .rollout'))`, 5*time.Second)
	if got := adminWebPids(t, e, addr, "after the restart"); !slices.Equal(got, newPids) {
		t.Errorf("smoothtool status and /api/status say %v, a moment ago %v", got, newPids)
	}

	// Refused: a POST from the page without the token (with credentials,
	// same origin)...
	got := adminEval[string](t, ctx, "a POST without the token",
		`fetch('/api/services/web/restart', {method: 'POST'}).then(async r => r.status + ' ' + await r.text())`, chromedp.EvalAwaitPromise)
	t.Logf("POST from the page without the token: %s", strings.TrimSpace(got))
	if !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "CSRF token") {
		t.Errorf("POST from the page without the token: %s, want 403 for the token", got)
	}
	// ... one with the token, from the right origin, but without
	// credentials...
	token := adminEval[string](t, ctx, "the token", `document.querySelector('#service-web form[action$="/restart"] input[name=csrf]').value`)
	if token == "" {
		t.Fatal("no CSRF token in the page")
	}
	code, body, hdr := adminDo(t, "POST", "http://"+addr+"/api/services/web/restart", map[string]string{
		"X-CSRF-Token": token, "Origin": "http://" + addr,
	})
	t.Logf("POST with the token, without credentials: %d %s", code, strings.TrimSpace(body))
	if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("POST with the token and without credentials: %d (WWW-Authenticate %q) %s, want 401 with a Basic challenge",
			code, hdr.Get("WWW-Authenticate"), body)
	}
	// ... and a GET of the action's URL, from the page (credentials) and
	// from Go with credentials and the token.
	got = adminEval[string](t, ctx, "a GET of the action",
		`fetch('/api/services/web/restart').then(async r => r.status + ' ' + await r.text())`, chromedp.EvalAwaitPromise)
	t.Logf("GET from the page: %s", strings.TrimSpace(got))
	if !strings.HasPrefix(got, "405 ") {
		t.Errorf("GET of the action from the page: %s, want 405", got)
	}
	code, body, hdr = adminDo(t, "GET", "http://"+addr+"/api/services/web/restart?csrf="+token, map[string]string{
		"X-CSRF-Token": token, "Origin": "http://" + addr,
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(adminTestUser+":"+adminTestPassword)),
	})
	if code != http.StatusMethodNotAllowed {
		t.Errorf("GET of the action with credentials and token: %d %s, want 405", code, body)
	} else if allow := hdr.Get("Allow"); !strings.Contains(allow, "POST") {
		t.Errorf("GET of the action: 405 with Allow %q, want POST in it", allow)
	}

	// None of them changed anything.
	time.Sleep(300 * time.Millisecond)
	st2 := adminStatus(t, addr)
	if got := adminPidsOf(t, st2, "after the refused requests"); !slices.Equal(got, newPids) {
		t.Errorf("after the refused requests web's pids are %v, want %v still", got, newPids)
	}
	if ro2 := adminWebService(t, st2).LastRollout; ro2 == nil || !ro2.StartedAt.Equal(ro.StartedAt) {
		t.Errorf("after the refused requests the last rollout is %+v, want still the one of %v", ro2, ro.StartedAt)
	}

	// The daemon's log has the restart by its user, and the refusal.
	daemonLog, _ := os.ReadFile(filepath.Join(e.dir, "logs", "smoothserve.log"))
	logText := d.out.String() + string(daemonLog)
	for _, want := range []string{"admin: restart", "admin: action refused: no valid CSRF token"} {
		if !strings.Contains(logText, want) {
			t.Errorf("smoothserve's log has no %q", want)
		}
	}

	res := load.Stop()
	t.Logf("load over %v: %v; slowest %v; by pid %v", res.Elapsed.Round(time.Millisecond), res, res.MaxLatency.Round(time.Millisecond), res.Pids)
	if err := res.Err(); err != nil {
		t.Errorf("requests failed across the restart from the admin page: %v", err)
	}
	for _, pid := range newPids {
		if res.Pids[strconv.Itoa(pid)] == 0 {
			t.Errorf("the new instance %d answered none of the load's requests (by pid: %v)", pid, res.Pids)
		}
	}
	t.Logf("load ran %v; the test took %v", time.Since(loadBegan).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// adminBrowser starts a headless Chromium that sends Basic credentials
// of user with every request, as a browser does once logged in; it lives
// 40 s at most and is stopped at the end of the test.
func adminBrowser(t *testing.T, chromium, user, password string) context.Context {
	t.Helper()
	return browsertest.Start(t, chromium, 40*time.Second, user, password)
}

// adminEval evaluates a JavaScript expression in the page.
func adminEval[T any](t *testing.T, ctx context.Context, what, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("%s: evaluating %s in the page: %v", what, expr, err)
	}
	return v
}

// adminStatus is GET /api/status of the admin listener (no credentials).
func adminStatus(t *testing.T, addr string) api.Status {
	t.Helper()
	code, body, _ := adminDo(t, "GET", "http://"+addr+"/api/status", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /api/status: %d %s", code, body)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET /api/status: %v\n%s", err, body)
	}
	return st
}

// adminWebPids is web's pids, sorted, all ready, as GET /api/status reports
// them; smoothtool status --json must say the same.
func adminWebPids(t *testing.T, e *env, addr, when string) []int {
	t.Helper()
	fromAdmin := adminPidsOf(t, adminStatus(t, addr), when)
	code, out, errOut := e.tool("status", "--json")
	if code != 0 {
		t.Fatalf("smoothtool status --json: exit %d\n%s%s", code, out, errOut)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("smoothtool status --json: %v\n%s", err, out)
	}
	if fromTool := adminPidsOf(t, st, when); !slices.Equal(fromTool, fromAdmin) {
		t.Fatalf("%s: smoothtool status --json says web's pids are %v, /api/status %v", when, fromTool, fromAdmin)
	}
	return fromAdmin
}

func adminWebService(t *testing.T, st api.Status) api.ServiceStatus {
	t.Helper()
	for _, s := range st.Services {
		if s.Name == "web" {
			return s
		}
	}
	t.Fatalf("no service web in the status: %+v", st)
	return api.ServiceStatus{}
}

// adminPidsOf is web's pids in st, sorted; every instance must be ready.
func adminPidsOf(t *testing.T, st api.Status, when string) []int {
	t.Helper()
	s := adminWebService(t, st)
	var pids []int
	for _, in := range s.Instances {
		if in.State != api.StateReady || in.Pid == 0 {
			t.Fatalf("%s: web#%d is %v with pid %d, want ready (%+v)", when, in.Slot, in.State, in.Pid, s.Instances)
		}
		pids = append(pids, in.Pid)
	}
	if len(pids) != 2 {
		t.Fatalf("%s: web has %d instances, want 2: %+v", when, len(pids), s.Instances)
	}
	slices.Sort(pids)
	return pids
}

func adminPidStrings(pids []int) []string {
	var s []string
	for _, p := range pids {
		s = append(s, strconv.Itoa(p))
	}
	return adminSorted(s)
}

func adminSorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// adminDo sends one request with a plain client (no credentials unless
// given in headers) and returns its status, body and headers.
func adminDo(t *testing.T, method, url string, headers map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}
