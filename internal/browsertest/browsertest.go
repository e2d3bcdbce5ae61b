// Package browsertest runs a headless Chromium for tests (chromedp, with
// Debian's chromium): one way to find it and to start and stop it, for
// every package whose tests drive a browser.
//
// Invariant: a browser started here is stopped, and the folder it writes in
// (its profile, and its TMPDIR, where Chromium makes its singleton socket's
// org.chromium.Chromium.* folder) removed, when the test ends; its output reaches the test log only if the
// test failed.
package browsertest

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"smoothserve/internal/syncbuf"
)

// Chromium returns the path of a Chromium (or Chrome) binary on PATH. It
// skips the test where there is none, but for CI, where .ci/run installs
// Debian's chromium and its absence is a failure.
func Chromium(t testing.TB) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome"}
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("CI=%s and none of %v is on PATH (.ci/run installs Debian's chromium)", ci, names)
	}
	t.Skipf("no browser to drive: none of %v is on PATH", names)
	return ""
}

// Start starts the headless Chromium at path (no sandbox: the tests run as
// root; a profile folder and a TMPDIR of its own), which lives at most lifetime, and
// returns its chromedp context. With user set, every request it makes
// carries Basic credentials of user and password, as a browser's does once
// logged in.
func Start(t testing.TB, path string, lifetime time.Duration, user, password string) context.Context {
	t.Helper()
	root, err := os.MkdirTemp("", "smoothserve-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	profile, tmp := filepath.Join(root, "profile"), filepath.Join(root, "tmp")
	for _, dir := range []string{profile, tmp} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	output := &syncbuf.Buffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(profile), chromedp.Env("TMPDIR="+tmp), chromedp.CombinedOutput(output))
	life, cancelLife := context.WithTimeout(context.Background(), lifetime)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser() // stops the browser and waits for it
		cancelAlloc()
		cancelLife()
		if t.Failed() {
			out := withoutDBus(output.String())
			t.Logf("chromium output (but its complaints of no D-Bus):\n%s", out[max(0, len(out)-3000):])
		}
		// Its helpers may write in the profile a moment after it stops.
		for range 50 {
			if os.RemoveAll(root) == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if user != "" {
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
		err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders,
				network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
			return err
		}))
		if err != nil {
			t.Fatalf("starting %s: %v", path, err)
		}
	}
	return ctx
}

// withoutDBus drops the lines of Chromium's output about D-Bus, which a
// test machine does not run: many, and beside the point.
func withoutDBus(out string) string {
	var keep []string
	for line := range strings.Lines(out) {
		if !strings.Contains(line, "dbus") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}
