package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What runs for a service changes only by applying that service's file,
// and only when the rollout that carries it succeeds (package daemon).

// serviceInfo is a service's hosts and proxy port as status shows them.
func serviceInfo(t *testing.T, st map[string]any, name string) (hosts string, port int) {
	t.Helper()
	for _, s := range st["services"].([]any) {
		svc := s.(map[string]any)
		if svc["name"] != name {
			continue
		}
		var hs []string
		for _, h := range svc["hosts"].([]any) {
			hs = append(hs, h.(string))
		}
		return strings.Join(hs, ","), int(svc["port"].(float64))
	}
	t.Fatalf("no service %s in status: %v", name, st)
	return "", 0
}

// awaitIn waits until what is in file n times.
func awaitIn(t *testing.T, file, what string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		if strings.Count(string(b), what) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %q fewer than %d times after 30s:\n%s", file, what, n, tail(string(b), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestYamlEditAppliesOnlyItsServiceAndOnlyOnSuccess(t *testing.T) {
	e := newEnv(t, 1+2+2)
	aStart, bStart := e.ports.block(2), e.ports.block(2)
	write := func(name, hosts string, start int, extra string) {
		writeFile(t, filepath.Join(e.dir, "services", name+".yaml"), fmt.Sprintf(
			"name: %s\nserver_name: %q\nstart_instance_port: %d\ninstance_count: 1\nexecutable_path: ./app/demo\nhealth_check: /healthz\n%s",
			name, hosts, start, extra))
	}
	auto := fmt.Sprintf("auto_restart: true\ndelay_update_time: %v\nstart_timeout: 3\n", quiet.Seconds())
	write("a", "a.test", aStart, auto)
	write("b", "b.test", bStart, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "a.test", 1, 15*time.Second)
	d.waitPids(e.proxyAddr(), "b.test", 1, 15*time.Second)
	aLog := filepath.Join(e.dir, "logs", "a.log")
	expect := func(host string, want int) {
		t.Helper()
		code, body, err := httpGet(e.proxyAddr(), host, "/")
		if err != nil || code != want {
			t.Errorf("GET %s/: %d %v, want %d\n%s", host, code, err, want, body)
		}
	}

	// b's file is edited, but b does not restart on changes: a's edit
	// applies a's file only, and b keeps its running hosts.
	write("b", "b.test, b2.test", bStart, "")
	write("a", "a.test", aStart, auto+"env:\n  DEMO_VERSION: \"2\"\n")
	awaitIn(t, aLog, "smoothserve: rolling restart of a done", 1)
	expect("b2.test", 404)
	expect("b.test", 200)
	if hosts, _ := serviceInfo(t, e.statusJSON(), "b"); hosts != "b.test" {
		t.Errorf("status shows b's hosts %q after an edit of a's file, want b.test", hosts)
	}

	// A failed rollout carrying a new host: the host is not routed, the
	// old ones still are, and status shows the service as it was.
	write("a", "a.test, new.test", aStart, auto+"args: [\"-no-such-flag\"]\n")
	awaitIn(t, aLog, "smoothserve: rolling restart of a failed", 1)
	expect("new.test", 404)
	expect("a.test", 200)
	if hosts, port := serviceInfo(t, e.statusJSON(), "a"); hosts != "a.test" || port != e.proxyPort {
		t.Errorf("status after a failed rollout: a on hosts %q port %d, want a.test on %d", hosts, port, e.proxyPort)
	}

	// Once a rollout carrying it succeeds, the new host is routed.
	write("a", "a.test, new.test", aStart, auto)
	awaitIn(t, aLog, "smoothserve: rolling restart of a done", 2)
	expect("new.test", 200)
	if hosts, _ := serviceInfo(t, e.statusJSON(), "a"); hosts != "a.test,new.test" {
		t.Errorf("status after the rollout: a on hosts %q, want a.test,new.test", hosts)
	}
}
