package client

import (
	"os/exec"
	"strings"
	"testing"
)

// smoothtool, started for every command, links neither net/http nor the
// daemon's side of the socket (package doc).
func TestSmoothtoolLinksNoHTTPStack(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "smoothserve/cmd/smoothtool").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "net/http", "smoothserve/control", "smoothserve/supervisor", "smoothserve/proxy":
			t.Errorf("smoothtool links %s", pkg)
		}
	}
}
