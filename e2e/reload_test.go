package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smoothtool reload applies the service files as they are on disk in the
// running daemon: added services start, removed ones stop, changed ones
// roll; the process stays.
func TestSmoothtoolReloadAppliesTheFilesOnDisk(t *testing.T) {
	e := newEnv(t, 1+3*2)
	e.service("web", "web.test", 1, "")
	e.service("api", "api.test", 1, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	d.waitPids(e.proxyAddr(), "api.test", 1, 15*time.Second)
	pid := d.pid()

	e.service("extra", "extra.test", 1, "")
	if code, _, errOut := e.tool("start", "extra"); code != 1 || !strings.Contains(errOut, "run smoothtool reload") {
		t.Errorf("start of a service added since the start: exit %d, stderr %q; want 1 and a hint to reload", code, errOut)
	}
	if err := os.Remove(filepath.Join(e.dir, "services", "api.yaml")); err != nil {
		t.Fatal(err)
	}
	webFile := filepath.Join(e.dir, "services", "web.yaml")
	web, err := os.ReadFile(webFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, webFile, string(web)+"env:\n  DEMO_VERSION: \"2\"\n")

	code, out, errOut := e.tool("reload")
	if code != 0 {
		t.Fatalf("smoothtool reload: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"web  rolled\n", "extra  added\n", "api  removed\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("smoothtool reload printed %q, want a line %q", out, want)
		}
	}
	expect := func(host string, want int, body string) {
		t.Helper()
		code, got, err := httpGet(e.proxyAddr(), host, "/")
		if err != nil || code != want || !strings.Contains(got, body) {
			t.Errorf("GET %s/: %d %v %q, want %d with %q", host, code, err, got, want, body)
		}
	}
	expect("extra.test", 200, "version=1")
	expect("web.test", 200, "version=2")
	expect("api.test", 404, "")
	st := e.statusJSON()
	if got := int(st["pid"].(float64)); got != pid {
		t.Errorf("status after reload names pid %d, want the same daemon %d", got, pid)
	}
	if _, ok := instancesOf(t, st)["api"]; ok {
		t.Errorf("status still shows the removed service api: %v", st)
	}

	if code, out, errOut := e.tool("reload"); code != 0 || strings.Count(out, "unchanged") != 2 {
		t.Errorf("a second reload: exit %d, stdout %q, stderr %q; want web and extra unchanged", code, out, errOut)
	}

	// enabled: false stops the service; true again starts it.
	extraFile := filepath.Join(e.dir, "services", "extra.yaml")
	extra, err := os.ReadFile(extraFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, extraFile, string(extra)+"enabled: false\n")
	if code, out, errOut := e.tool("reload"); code != 0 || !strings.Contains(out, "extra  disabled\n") {
		t.Errorf("reload with extra disabled: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, s := range e.statusJSON()["services"].([]any) {
		if svc := s.(map[string]any); svc["name"] == "extra" && (svc["state"] != "stopped" || len(svc["instances"].([]any)) != 0) {
			t.Errorf("status of extra after it was disabled: %v, want stopped with no instance", svc)
		}
	}
	// web is alone on the port now: it takes every host.
	expect("extra.test", 200, "version=2")
	// New settings of a disabled service are kept, not run, and said so.
	writeFile(t, extraFile, string(extra)+"enabled: false\nstop_timeout: 7s\n")
	if code, out, errOut := e.tool("reload"); code != 0 || !strings.Contains(out, "extra  kept\n") {
		t.Errorf("reload of disabled extra with new settings: exit %d, stdout %q, stderr %q; want extra kept", code, out, errOut)
	}
	writeFile(t, extraFile, string(extra))
	if code, out, errOut := e.tool("reload"); code != 0 || !strings.Contains(out, "extra  enabled\n") {
		t.Errorf("reload with extra enabled again: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	expect("extra.test", 200, "version=1")

	// So are those of a service stopped with smoothtool stop: it stays
	// stopped until start, which runs them.
	if code, out, errOut := e.tool("stop", "extra"); code != 0 {
		t.Fatalf("stop extra: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	writeFile(t, extraFile, string(extra)+"stop_timeout: 7s\n")
	if code, out, errOut := e.tool("reload"); code != 0 || !strings.Contains(out, "extra  kept\n") {
		t.Errorf("reload of stopped extra with new settings: exit %d, stdout %q, stderr %q; want extra kept", code, out, errOut)
	}
	expect("extra.test", 503, "") // stopped, its host still its own
	if code, out, errOut := e.tool("start", "extra"); code != 0 {
		t.Fatalf("start extra: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	expect("extra.test", 200, "version=1")
	writeFile(t, extraFile, string(extra))
	if code, out, errOut := e.tool("reload"); code != 0 || !strings.Contains(out, "extra  rolled\n") {
		t.Errorf("reload of running extra with its settings back: exit %d, stdout %q, stderr %q; want extra rolled", code, out, errOut)
	}

	// An invalid file changes nothing, and says where it is wrong.
	writeFile(t, extraFile, string(extra)+"instance_cout: 2\n")
	if code, out, errOut := e.tool("reload"); code != 1 || !strings.Contains(errOut, "extra.yaml:") || !strings.Contains(errOut, "instance_cout") {
		t.Errorf("reload of an invalid file: exit %d, stdout %q, stderr %q; want 1 naming the file and key", code, out, errOut)
	}
	expect("extra.test", 200, "version=1")
}

// A host moved from one service to another by a reload (one file gives it
// up, the other takes it) is served throughout, then by its new service:
// the reload moves the hosts of all services at once before it rolls any.
// Before, the service that takes it was refused ("claimed by api and
// web") while the other, later in the reload, still had it, and the host
// answered 404 until the next reload.
func TestAReloadMovesAHostBetweenServices(t *testing.T) {
	e := newEnv(t, 1+4*2)
	e.service("api", "api.test", 1, "")
	e.service("web", "web.test, moved.test", 1, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "moved.test", 1, 15*time.Second)
	d.waitPids(e.proxyAddr(), "api.test", 1, 15*time.Second)

	stop := make(chan struct{})
	bad := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if status, body, err := httpGet(e.proxyAddr(), "moved.test", "/"); err != nil || status != 200 {
				select {
				case bad <- fmt.Sprintf("%d %q %v", status, body, err):
				default:
				}
			}
		}
	}()
	apiPort := e.service("api", "api.test, moved.test", 1, "")
	e.service("web", "web.test", 1, "")
	code, out, errOut := e.tool("reload")
	close(stop)
	<-done
	if code != 0 {
		t.Errorf("smoothtool reload: exit %d\n%s%s", code, out, errOut)
	}
	close(bad)
	for b := range bad {
		t.Errorf("moved.test during the reload: %s", b)
	}
	_, body, err := httpGet(e.proxyAddr(), "moved.test", "/")
	if err != nil || !strings.Contains(body, fmt.Sprintf("port=%d ", apiPort)) && !strings.Contains(body, fmt.Sprintf("port=%d ", apiPort+1)) {
		t.Errorf("moved.test after the reload: %q %v, want api's instance (port %d or %d)", body, err, apiPort, apiPort+1)
	}
}

// A reload that swaps two services' instance port ranges cannot apply
// them one after the other: each service's new ports are the other's
// instances'. It says whose they are (not "another process"), and both
// services go on serving.
func TestAReloadSwappingPortRangesNamesTheOwner(t *testing.T) {
	e := newEnv(t, 1+2*2)
	apiPort := e.service("api", "api.test", 1, "")
	webPort := e.service("web", "web.test", 1, "")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "api.test", 1, 15*time.Second)
	d.waitPids(e.proxyAddr(), "web.test", 1, 15*time.Second)
	for name, port := range map[string]int{"api": webPort, "web": apiPort} {
		body := fmt.Sprintf("name: %s\nserver_name: %q\nstart_instance_port: %d\ninstance_count: 1\nexecutable_path: ./app/demo\nhealth_check: /healthz\n",
			name, name+".test", port)
		writeFile(t, filepath.Join(e.dir, "services", name+".yaml"), body)
	}
	code, out, errOut := e.tool("reload")
	if code != 1 || !strings.Contains(out+errOut, "of this smoothserve") {
		t.Errorf("smoothtool reload swapping port ranges: exit %d, want 1 and the owner named\n%s%s", code, out, errOut)
	}
	for _, host := range []string{"api.test", "web.test"} {
		if status, body, err := httpGet(e.proxyAddr(), host, "/"); err != nil || status != 200 {
			t.Errorf("%s after the reload: %d %q %v", host, status, body, err)
		}
	}
}
