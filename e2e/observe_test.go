package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrape fetches the admin listener's /metrics and returns each sample
// line's value by its name and labels, as written.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds the samples whose name and labels match re.
func sum(m map[string]float64, re string) float64 {
	r := regexp.MustCompile(re)
	var n float64
	for k, v := range m {
		if r.MatchString(k) {
			n += v
		}
	}
	return n
}

// combinedLine is a line of the access log in the combined format.
var combinedLine = regexp.MustCompile(`^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} [+-][0-9]{4}\] "(GET|POST) /[^ "]* HTTP/1\.1" (200) [0-9]+ "[^"]*" "[^"]*" rt=[0-9]+\.[0-9]{3} urt=[0-9]+\.[0-9]{3} service=web instance=[0-9]+:[0-9]+ retried=(true|false)$`)

func countLines(t *testing.T, path string) (good, bad int, example string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("access log: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		if combinedLine.MatchString(line) {
			good++
		} else {
			bad++
			example = line
		}
	}
	return good, bad, example
}

// TestMetricsAndAccessLogAfterALoadAndARollout: after a known load through
// a rolling restart, /metrics counts every request, in flight is back to
// 0, every instance is up, the rollout is counted; the access log has one
// well-formed line per request, and a rotation with SIGUSR1 loses none.
func TestMetricsAndAccessLogAfterALoadAndARollout(t *testing.T) {
	e := newEnv(t, 10)
	admin := e.withAdmin()
	e.service("web", "web.test", 2, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 2, 15*time.Second)
	// waitPids' own requests are counted too: from here on, deltas, taken
	// once the access log has a line for each (its writer flushes every
	// 100 ms, later on a loaded machine).
	const webRequests = `^smoothserve_http_requests_total\{.*service="web"`
	logPath := filepath.Join(e.dir, "logs", "access.log")
	var before map[string]float64
	var good0, bad0 int
	if !waitUntil(10*time.Second, func() bool {
		before = scrape(t, admin)
		good0, bad0, _ = countLines(t, logPath)
		return float64(good0+bad0) == sum(before, webRequests)
	}) {
		t.Fatalf("the access log has %d lines for the %v requests counted before the load", good0+bad0, sum(before, webRequests))
	}

	load := mixedLoad(e, "web.test")
	time.Sleep(300 * time.Millisecond)
	if code, out, errOut := e.tool("restart", "web"); code != 0 {
		t.Fatalf("restart: %d %s%s", code, out, errOut)
	}
	// Rotate mid-load: move the file, then SIGUSR1.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// The load goes on until the reopened log has lines: the signal is
	// handled a moment later, later still on a loaded machine.
	if !waitUntil(10*time.Second, func() bool { b, _ := os.ReadFile(logPath); return len(b) > 0 }) {
		load.Stop()
		t.Fatalf("nothing was written to the reopened log 10s after SIGUSR1")
	}
	res := load.Stop()
	if err := res.Err(); err != nil {
		t.Fatalf("load: %v", err)
	}

	// The counters and the logs (whose writers flush every 100 ms) are
	// looked at once they have taken in every request of the load, or
	// after 10 s: what is checked below.
	var after map[string]float64
	var good1, bad1, good2, bad2 int
	var ex1, ex2 string
	waitUntil(10*time.Second, func() bool {
		after = scrape(t, admin)
		good1, bad1, ex1 = countLines(t, logPath+".1")
		good2, bad2, ex2 = countLines(t, logPath)
		return sum(after, webRequests)-sum(before, webRequests) >= float64(res.Total) &&
			sum(after, `^smoothserve_http_requests_in_flight\{service="web"\}`) == 0 &&
			good1+bad1-good0-bad0+good2+bad2 >= int(res.Total)
	})
	counted := sum(after, webRequests) - sum(before, webRequests)
	if counted != float64(res.Total) {
		t.Errorf("requests_total grew by %v, the load sent %d", counted, res.Total)
	}
	if n := sum(after, `^smoothserve_http_request_duration_seconds_count\{service="web"\}`) - sum(before, `^smoothserve_http_request_duration_seconds_count\{service="web"\}`); n != float64(res.Total) {
		t.Errorf("the duration histogram counted %v, the load sent %d", n, res.Total)
	}
	if v := sum(after, `^smoothserve_http_requests_in_flight\{service="web"\}`); v != 0 {
		t.Errorf("in flight after the load: %v", v)
	}
	if v := sum(after, `^smoothserve_upstream_up\{.*service="web"`); v != 2 {
		t.Errorf("instances up: %v, want 2", v)
	}
	if v := sum(after, `^smoothserve_rollouts_total\{result="ok",service="web"\}`); v != 1 {
		t.Errorf("rollouts ok: %v, want 1", v)
	}
	if v := sum(after, `^smoothserve_instance_restarts_total\{.*reason="rollout",service="web"\}`); v != 2 {
		t.Errorf("restarts by the rollout: %v, want 2 (one per instance)", v)
	}
	if v := sum(after, `^smoothserve_instance_resident_memory_bytes\{.*service="web"`); v <= 0 {
		t.Errorf("instances' memory: %v", v)
	}

	if bad1+bad2 > 0 {
		t.Errorf("%d malformed access log lines, e.g. %q %q", bad1+bad2, ex1, ex2)
	}
	if got := good1 - good0 + good2; got != int(res.Total) {
		t.Errorf("access log lines for the load: %d (%d before the rotation, %d after), want %d", got, good1-good0, good2, res.Total)
	}
	if good2 == 0 {
		t.Errorf("nothing was written to the reopened log after SIGUSR1")
	}
	t.Logf("load %v; lines %d + %d across the rotation", res, good1-good0, good2)
}

// TestMetricsAreScrapedThroughARollout: while a rolling restart runs, a
// slot has its old process and the new one; every scrape succeeds, with
// one series a slot (two of one name and labels would fail it whole).
func TestMetricsAreScrapedThroughARollout(t *testing.T) {
	e := newEnv(t, 8)
	admin := e.withAdmin()
	// A replacement listens 400 ms after its start: each slot has two
	// processes for that long at least.
	e.service("web", "web.test", 2, "args: [\"-port={port}\", \"-start-delay=400ms\"]\n")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 2, 15*time.Second)
	done := make(chan string, 1)
	go func() {
		code, out, errOut := e.tool("restart", "web")
		if code != 0 {
			done <- fmt.Sprintf("restart: %d %s%s", code, out, errOut)
			return
		}
		done <- ""
	}()
	scrapes, slotsSeen := 0, 0
	for {
		select {
		case msg := <-done:
			if msg != "" {
				t.Fatal(msg)
			}
			if scrapes < 20 {
				t.Fatalf("only %d scrapes during the rollout", scrapes)
			}
			t.Logf("%d scrapes during the rollout, each with %d-2 series of smoothserve_upstream_up", scrapes, slotsSeen)
			return
		default:
		}
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatalf("GET /metrics during the rollout: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /metrics during the rollout: %s %s", resp.Status, body)
		}
		n := strings.Count(string(body), "\nsmoothserve_upstream_up{")
		if n > 2 {
			t.Fatalf("%d series of smoothserve_upstream_up for 2 slots:\n%s", n, body)
		}
		slotsSeen = max(slotsSeen, n)
		scrapes++
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAdminPageIsReadOnlyWithoutAuth: the admin page serves the status and
// refuses every action without AdminAuth.
func TestAdminPageIsReadOnlyWithoutAuth(t *testing.T) {
	e := newEnv(t, 6)
	admin := e.withAdmin()
	e.service("web", "web.test", 1, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	resp, err := http.Get("http://" + admin + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`"name":\s*"web"`).Match(body) {
		t.Errorf("/api/status: %s", body)
	}
	resp, err = http.Post("http://"+admin+"/api/services/web/restart", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("an action without AdminAuth: %d, want refused", resp.StatusCode)
	}
}

// TestMetricsGoOnAcrossAnUpgrade: the counters of the new daemon go on from
// the old one's: requests, restarts by reason, and the upgrade itself.
func TestMetricsGoOnAcrossAnUpgrade(t *testing.T) {
	in, admin := startInstalledWithAdmin(t)
	for range 20 {
		if _, _, err := httpGet(in.proxyAddr(), "web.test", "/"); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := in.run("restart", "web"); code != 0 {
		t.Fatalf("restart: %d %s%s", code, out, errOut)
	}
	before := scrape(t, admin)
	if _, _, err := upgradeBySIGHUP(in); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, admin)
	for _, m := range []string{`^smoothserve_http_requests_total\{.*service="web"`, `^smoothserve_instance_restarts_total\{.*reason="rollout"`,
		`^smoothserve_rollouts_total\{result="ok",service="web"\}`} {
		if b, a := sum(before, m), sum(after, m); b == 0 || a < b {
			t.Errorf("%s: %v before the upgrade, %v after; want it to go on", m, b, a)
		}
	}
	if v := sum(after, `^smoothserve_upgrades_total\{result="ok"\}`); v != 1 {
		t.Errorf("upgrades ok after one: %v", v)
	}
	// The access log, which lost nothing, is there at 0.
	logLost := regexp.MustCompile(`^smoothserve_access_log_dropped_lines_total\{path=".*/access\.log"\}$`)
	n := 0
	for k, v := range after {
		if logLost.MatchString(k) {
			n++
			if v != 0 {
				t.Errorf("%s %v, want 0", k, v)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d series of access.log's lost lines after the upgrade, want 1", n)
	}
}

// TestRequestsNoServiceTookAreInTheAccessLog: with two named services on
// the port and no default, a host neither claims (404) and a request that
// is not HTTP (400) get a line each in AccessLog, as nginx logs them.
func TestRequestsNoServiceTookAreInTheAccessLog(t *testing.T) {
	e := newEnv(t, 10)
	e.writeMain("")
	e.service("web", "web.test", 1, "")
	e.service("api", "api.test", 1, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	d.waitPids(e.proxyAddr(), "api.test", 1, 15*time.Second)
	for _, raw := range []string{
		"GET /who HTTP/1.1\r\nHost: nobody.test\r\nConnection: close\r\n\r\n",
		"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", // a TLS hello on the plain port
	} {
		c, err := net.Dial("tcp", e.proxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, raw)
		io.Copy(io.Discard, c)
		c.Close()
	}
	logPath := filepath.Join(e.dir, "logs", "access.log")
	want := []string{`"GET /who HTTP/1.1" 404 `, `"\x16\x03\x01\x00\xA5\x01\x00\x00\xA1\x03\x03" 400 `}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		missing := ""
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				missing = w
			}
		}
		if missing == "" {
			if n := strings.Count(string(b), "service=- instance=-"); n != 2 {
				t.Errorf("%d lines without a service, want 2:\n%s", n, b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access log lacks %s:\n%s", missing, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
