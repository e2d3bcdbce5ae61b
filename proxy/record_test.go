package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smoothserve/accesslog"
)

// TestRequestsAreLoggedAndCounted: each request answered gets one line in
// its service's access log and one count in its stats.
func TestRequestsAreLoggedAndCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	log, err := accesslog.Open(path, accesslog.Combined)
	if err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "web", in), AccessLog: log})
	cl := dial(t, f.addr)
	cl.mustDo(get("x", "/one"))
	cl.mustDo("GET /two HTTP/1.1\r\nHost: x\r\nUser-Agent: tester\r\nReferer: http://r/\r\n\r\n")
	cl.mustDo("POST /three HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	cl.c.Close()
	time.Sleep(50 * time.Millisecond)
	log.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), b)
	}
	for i, want := range []string{`"GET /one HTTP/1.1" 200 `, `"GET /two HTTP/1.1" 200 `, `"POST /three HTTP/1.1" 200 `} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "service=web instance=0:") {
			t.Errorf("line %d: %s; want %s and the service and instance", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], `"http://r/" "tester"`) {
		t.Errorf("line 2 lacks the referer and user agent: %s", lines[1])
	}
	counts := map[string]uint64{}
	for _, st := range f.srv.Stats() {
		if st.Service != "web" {
			continue
		}
		for _, rc := range st.Requests {
			counts[rc.Method+" "+rc.Code] += rc.Count
		}
		if n := st.Buckets[len(st.Buckets)-1]; n != 3 {
			t.Errorf("histogram count %d, want 3", n)
		}
	}
	if counts["GET 200"] != 2 || counts["POST 200"] != 1 {
		t.Errorf("counts %v, want GET 200: 2, POST 200: 1", counts)
	}
}
