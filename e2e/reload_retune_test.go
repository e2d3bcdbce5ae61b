package e2e

import (
	"bufio"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A reload that changes only what no instance runs with (a host added,
// the proxy's body limit) applies it without a restart: the same
// instances answer, under the new host too, with the new limit. One that
// changes what they run with (their environment) still rolls them.
func TestAReloadOfHostsAndLimitsRestartsNoInstance(t *testing.T) {
	e := newEnv(t, 1+2*2)
	e.service("web", "web.test", 2, "")
	d := e.startDaemon()
	before := d.waitPids(e.proxyAddr(), "web.test", 2, 15*time.Second)

	file := filepath.Join(e.dir, "services", "web.yaml")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, strings.Replace(string(orig), `server_name: "web.test"`, `server_name: "web.test, www.web.test"`, 1)+
		"max_body_size: 10\nresponse_header_timeout: 20s\n")
	if code, out, errOut := e.tool("reload"); code != 0 || !strings.Contains(out, "web  updated\n") {
		t.Fatalf("reload of hosts and limits: exit %d, stdout %q, stderr %q; want web updated", code, out, errOut)
	}
	if after := d.waitPids(e.proxyAddr(), "www.web.test", 2, 10*time.Second); !maps.Equal(after, before) {
		t.Errorf("after the reload www.web.test is answered by %v, want the same instances %v", after, before)
	}
	if code := postStatus(t, e.proxyAddr(), "web.test", 100); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 100-byte POST with max_body_size 10: %d, want 413", code)
	}
	if !strings.Contains(d.out.String(), "settings applied without a restart") {
		t.Errorf("the log does not say the settings were applied without a restart:\n%s", d.out.String())
	}

	writeFile(t, file, string(orig)+"env:\n  DEMO_VERSION: \"2\"\n")
	if code, out, errOut := e.tool("reload"); code != 0 || !strings.Contains(out, "web  rolled\n") {
		t.Fatalf("reload of the environment: exit %d, stdout %q, stderr %q; want web rolled", code, out, errOut)
	}
	for pid := range d.waitPids(e.proxyAddr(), "web.test", 2, 10*time.Second) {
		if before[pid] {
			t.Errorf("pid %d still answers after a reload that changed the instances' environment", pid)
		}
	}
}

// postStatus sends a POST of n bytes on its own connection and returns
// the status of its answer.
func postStatus(t *testing.T, addr, host string, n int) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", host, n, strings.Repeat("x", n))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
