package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An interpreter as executable_path, with a script its args name relative
// to working_dir: as pm2 runs `node server.js` in the app's folder. Without
// working_dir it would run in /usr/bin and not find server.js.
func TestWorkingDirRunsAScript(t *testing.T) {
	needNode(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal(err)
	}
	node, err = filepath.Abs(node)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 4)
	// Relative to smoothserve.yaml's folder, as every path of the files.
	appDir := filepath.Join(e.dir, "srv", "node")
	copyFile(t, filepath.Join("..", "examples", "node", "server.js"), filepath.Join(appDir, "server.js"))
	e.serviceOf(node, "node", "node.test", 1, "args: [\"server.js\", \"-port={port}\"]\nworking_dir: ./srv/node\n")
	d := e.startDaemon()
	pids := d.waitPids(e.proxyAddr(), "node.test", 1, 15*time.Second)

	want, err := filepath.EvalSymlinks(appDir)
	if err != nil {
		t.Fatal(err)
	}
	for pid := range pids {
		cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
		if err != nil {
			t.Fatal(err)
		}
		if cwd != want {
			t.Errorf("instance pid %d runs in %s, want working_dir %s", pid, cwd, want)
		}
	}
	status, body, err := httpGet(e.proxyAddr(), "node.test", "/")
	if err != nil || status != 200 || !strings.HasPrefix(body, "hello from node pid=") {
		t.Errorf("GET / for node.test: %d %q %v, want 200 and hello from node", status, body, err)
	}
}

// Two services on one port, one of them default_server: it answers its own
// name and every Host no service claims; the other answers its name.
func TestDefaultServer(t *testing.T) {
	e := newEnv(t, 8)
	// DEMO_VERSION names the service in the demo's answer: version=NAME.
	e.service("site", "site.test", 1, "env:\n  DEMO_VERSION: site\n")
	e.service("catchall", "catchall.test", 1, "env:\n  DEMO_VERSION: catchall\ndefault_server: true\n")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "site.test", 1, 10*time.Second)
	d.waitPids(e.proxyAddr(), "catchall.test", 1, 10*time.Second)

	for _, tt := range []struct{ host, want string }{
		{"site.test", "site"},
		{"SITE.test:80", "site"},
		{"catchall.test", "catchall"},
		{"unknown.test", "catchall"},
		{"www.site.test", "catchall"},
		{"127.0.0.1", "catchall"},
	} {
		status, body, err := httpGet(e.proxyAddr(), tt.host, "/")
		if err != nil || status != 200 || !strings.Contains(body, "version="+tt.want+"\n") {
			t.Errorf("Host %s: %d %q %v, want 200 from %s", tt.host, status, body, err, tt.want)
		}
	}
}

// A second default_server on the port is refused by --check, naming both
// files and the port; so is a working_dir that is not a folder.
func TestCheckServiceKeys(t *testing.T) {
	e := newEnv(t, 8)
	e.service("catchall", "catchall.test", 1, "default_server: true\n")
	e.service("site", "site.test", 1, "default_server: true\nworking_dir: ./app/demo\n")
	code, out := runCheck(t, e.config)
	if code == 0 {
		t.Fatalf("--check of two default_server on one port: exit 0\n%s", out)
	}
	// Files are read in name order: site.yaml, read later, gets the error.
	for _, want := range []string{
		fmt.Sprintf(`site.yaml:7: default_server: service "site" (default_server: true) and service "catchall" (default_server: true, %s:7) are both the default service of port %d`,
			filepath.Join(e.dir, "services", "catchall.yaml"), e.proxyPort),
		fmt.Sprintf("site.yaml:8: working_dir: %s: is a file, not a folder", e.demo),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--check output lacks %q:\n%s", want, out)
		}
	}
}

// {port} in an env value is the instance's port, as in args: an app that
// reads its port from the environment (Node's process.env.PORT) runs with
// args: [] and env PORT: "{port}".
func TestPortInTheEnvironment(t *testing.T) {
	e := newEnv(t, 1+2*2)
	script := filepath.Join(e.dir, "app", "by-env.sh")
	writeFile(t, script, "#!/bin/sh\nexec \"$(dirname \"$0\")/demo\" -port=\"$PORT\"\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	first := e.serviceOf("./app/by-env.sh", "web", "web.test", 2, "args: []\nenv:\n  PORT: \"{port}\"\n")
	d := e.startDaemon()
	pids := d.waitPids(e.proxyAddr(), "web.test", 2, 15*time.Second)
	if len(pids) != 2 {
		t.Fatalf("instances answering: %v", pids)
	}
	for range 10 {
		_, body, err := httpGet(e.proxyAddr(), "web.test", "/")
		if err != nil || !strings.Contains(body, "port="+strconv.Itoa(first)+" ") && !strings.Contains(body, "port="+strconv.Itoa(first+1)+" ") {
			t.Fatalf("an instance that took its port from PORT: %q %v, want port %d or %d", body, err, first, first+1)
		}
	}
}
