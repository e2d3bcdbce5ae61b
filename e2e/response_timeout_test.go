package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// response_header_timeout reaches the proxy from the service's file, at
// the start and at a reload: an instance that has not begun its answer in
// time gets its request a 504; with the limit lifted (0), the same slow
// request is answered.
func TestResponseHeaderTimeoutFromTheServiceFile(t *testing.T) {
	e := newEnv(t, 4)
	e.service("web", "web.test", 1, "response_header_timeout: 500ms\n")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)

	start := time.Now()
	code, body, err := httpGet(e.proxyAddr(), "web.test", "/slow?ms=3000")
	if err != nil || code != 504 {
		t.Fatalf("GET /slow?ms=3000 with a 500ms limit: %d %q %v, want 504", code, body, err)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("the 504 came after %v", took)
	}
	if code, body, err := httpGet(e.proxyAddr(), "web.test", "/slow?ms=100"); err != nil || code != 200 {
		t.Errorf("GET /slow?ms=100: %d %q %v, want 200", code, body, err)
	}

	file := filepath.Join(e.dir, "services", "web.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, strings.Replace(string(b), "response_header_timeout: 500ms", "response_header_timeout: 0", 1))
	if code, out, errOut := e.tool("reload"); code != 0 || !strings.Contains(out, "web  updated") {
		t.Fatalf("reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, body, err := httpGet(e.proxyAddr(), "web.test", "/slow?ms=1500"); err != nil || code != 200 {
		t.Errorf("GET /slow?ms=1500 with no limit: %d %q %v, want 200", code, body, err)
	}
}
