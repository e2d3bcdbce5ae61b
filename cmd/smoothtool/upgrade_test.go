package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// upgrade checks the configuration the new process will load, as
// smoothserve --check does, and refuses an invalid one with every problem
// before it asks the daemon: the daemon could only say that its new
// process exited.
func TestUpgradeChecksTheConfigurationFirst(t *testing.T) {
	config, socket := install(t) // with a broken service file
	st := *fixedStatus
	st.Config = config
	d := serveFakeStatus(t, socket, &st)

	code, out, errOut := runTool("upgrade", "-c", config)
	want := "smoothtool: upgrade refused; smoothserve (pid 4242) goes on serving: the new process would exit at once: configuration is invalid:\n"
	if code != 1 || out != "" || !strings.HasPrefix(errOut, want) ||
		!strings.Contains(errOut, filepath.Join(filepath.Dir(config), "services", "web.yaml")+":2: instance_cout: unknown key") {
		t.Errorf("upgrade with a broken service file: exit %d, stdout %q, stderr %q; want 1, %q and the file's problems", code, out, errOut, want)
	}
	d.mu.Lock()
	if slices.Contains(d.calls, "upgrade") {
		t.Errorf("the daemon was asked to upgrade with the configuration invalid")
	}
	d.mu.Unlock()

	write(t, filepath.Join(filepath.Dir(config), "services", "web.yaml"),
		"name: web\nstart_instance_port: 9100\ninstance_count: 1\nexecutable_path: /bin/sh\n")
	code, out, errOut = runTool("upgrade", "-c", config)
	if want := fmt.Sprintf("smoothserve upgraded: pid %d → 4343\n", os.Getpid()); code != 0 || out != want {
		t.Errorf("upgrade with the file repaired: exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
	}
}
