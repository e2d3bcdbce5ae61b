package admin

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"smoothserve/internal/browsertest"
	"smoothserve/internal/syncbuf"
)

// browser starts a headless Chromium that sends the test user's
// credentials with every request, as a browser does once logged in. It is
// stopped at the end of the test.
func browser(t *testing.T, chromium string) context.Context {
	t.Helper()
	return browsertest.Start(t, chromium, time.Minute, testUser, testPassword)
}

func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestBrowserRestart loads the page in Chromium as a logged-in user,
// sees the instances, clicks restart and sees it done; a POST without the
// token from the page, and one from another origin with it, are refused.
func TestBrowserRestart(t *testing.T) {
	chromium := browsertest.Chromium(t)
	d := &fakeDaemon{status: fixture()}
	log := &syncbuf.Buffer{}
	d.status.Services[0].Instances[0].CPUPercent, d.status.Services[0].Instances[0].RSSBytes = 7.3, 3<<30
	h := newHandler(Options{Daemon: d, Users: testUsers(), Logger: slog.New(slog.NewTextHandler(log, nil))})
	srv := httptest.NewServer(h.routes())
	defer srv.Close()
	ctx := browser(t, chromium)
	wait := func(what, expr string) {
		t.Helper()
		run(t, ctx, what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(10*time.Second)))
	}

	run(t, ctx, "loading the page", chromedp.Navigate(srv.URL))
	wait("the instances", `document.querySelectorAll('#service-web tr.instance').length === 2`)
	rows := run(t, ctx, "reading the instances", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#service-web tr.instance')].map(tr => tr.innerText)`))
	if !strings.Contains(rows[0], "5151") || !strings.Contains(rows[0], "ready") || !strings.Contains(rows[0], "7.3%") ||
		!strings.Contains(rows[0], "3.0 GiB") || !strings.Contains(rows[1], "backoff") {
		t.Errorf("instance rows %q, want slot 0 pid 5151 ready at 7.3%% CPU and 3.0 GiB, and slot 1 in backoff", rows)
	}

	run(t, ctx, "clicking restart", chromedp.Click(chromedp.CSS(`#service-web form[action$="/restart"] button`)))
	wait("the restart's outcome", `[...document.querySelectorAll('#outcomes li.ok')].some(li => li.textContent.includes('restart web: web ok, 2 replaced'))`)
	want := []string{"restart web by " + Trigger + " by " + testUser}
	if calls := d.gotCalls(); !slices.Equal(calls, want) {
		t.Errorf("after the click the daemon got %q, want %q", calls, want)
	}

	// The page follows the status.
	st := fixture() // not d.status's slices: the handler reads them
	st.Services[0].Instances[0].Pid = 6161
	d.mu.Lock()
	d.status = st
	d.mu.Unlock()
	wait("the refreshed pid", `document.querySelector('#service-web tr.instance').innerText.includes('6161')`)

	got := run(t, ctx, "a POST without the token", chromedp.Evaluate[string](
		`fetch('/api/services/web/restart', {method: 'POST'}).then(async r => r.status + ' ' + await r.text())`,
		chromedp.EvalAwaitPromise))
	if !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "CSRF token") {
		t.Errorf("POST without the token from the page: %s, want 403 for the token", got)
	}
	if calls := d.gotCalls(); !slices.Equal(calls, want) {
		t.Errorf("after a POST without the token the daemon got %q, want %q", calls, want)
	}

	// Another origin (another port) that has the token is refused too.
	token := run(t, ctx, "the token", chromedp.Evaluate[string](`document.querySelector('input[name=csrf]').value`))
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<!doctype html><title>elsewhere</title>"))
	}))
	defer other.Close()
	run(t, ctx, "loading another origin", chromedp.Navigate(other.URL))
	run(t, ctx, "a POST from another origin", chromedp.Evaluate[string](
		`fetch('`+srv.URL+`/api/services/web/restart', {method: 'POST', mode: 'no-cors', body: new URLSearchParams({csrf: '`+token+`'})}).then(r => r.type)`,
		chromedp.EvalAwaitPromise))
	if calls := d.gotCalls(); !slices.Equal(calls, want) {
		t.Errorf("after a POST from another origin the daemon got %q, want %q", calls, want)
	}
	if !strings.Contains(log.String(), "cross-origin request refused") {
		t.Errorf("no refusal of the cross-origin POST in the log:\n%s", log)
	}
}
