package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// What a new user sees when a first try goes wrong: each message names the
// file or the instance at fault, and says what is wrong with it.

// A service whose instances exit at once fails smoothtool start at once,
// with the instance's own words from its log, not only a pointer to
// smoothserve.log after waiting out start_timeout.
func TestSmoothtoolStartShowsTheFailingInstancesLog(t *testing.T) {
	e := newEnv(t, 8)
	e.service("web", "web.test", 2, "start_timeout: 30s\nargs: [\"-port={port}\", \"-fail-start\"]\n")
	e.killBackgroundAtCleanup()

	began := time.Now()
	code, out, errOut := e.tool("start")
	took := time.Since(began)
	if code != 1 {
		t.Fatalf("smoothtool start with a failing service: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"an instance of web cannot start",
		"exited before it was ready",
		"the end of web's log:\n",
		"  demo: failing on purpose (-fail-start)\n",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("smoothtool start stderr lacks %q:\n%s", want, errOut)
		}
	}
	// start_timeout + 15 s is what start would wait for an instance that
	// is merely slow.
	if took > 10*time.Second {
		t.Errorf("smoothtool start took %v to give up on instances that exit at once", took)
	}
	// The status shows the slots in backoff, or, when the daemon has
	// already begun the next try (a loaded machine), their last failure.
	if !strings.Contains(out, "backoff") && !strings.Contains(out, "exited before it was ready") {
		t.Errorf("smoothtool start printed no status showing the slots in backoff or why they failed:\n%s", out)
	}
}

// smoothserve --check, and a start, of a smoothserve.yaml that is not there
// say so, and do not call it invalid.
func TestMissingConfigFileIsNoSuchFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	for _, args := range [][]string{{"--check", "-c", missing}, {"--config", missing}} {
		cmd := exec.Command(bin.smoothserve, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Errorf("smoothserve %v: %v, want exit 1\n%s", args, err, out)
		}
		if want := "smoothserve: " + missing + ": no such file\n"; string(out) != want {
			t.Errorf("smoothserve %v says %q, want %q", args, out, want)
		}
	}
}

// A tab in a service file's indentation is named, at its line.
func TestCheckNamesATabInTheIndentation(t *testing.T) {
	e := newEnv(t, 4)
	e.service("web", "web.test", 1, "env:\n  A: 1\n\tB: 2\n") // lines 7, 8, 9
	code, out := runCheck(t, e.config)
	want := filepath.Join(e.dir, "services", "web.yaml") + ":9: a tab in the indentation (YAML indents with spaces)"
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("--check with a tab-indented line: exit %d, want 1 and %q:\n%s", code, want, out)
	}
}

// A service whose instances exit at once, added by a reload or started
// again after a stop, fails the command at once with the instance's own
// words, as a first start does: the reload does not wait for it forever,
// and the services after it in the reload are applied.
func TestAReloadOrStartOfAFailingServiceEndsAtOnce(t *testing.T) {
	e := newEnv(t, 8)
	e.service("api", "api.test", 1, "")
	e.killBackgroundAtCleanup()
	if code, out, errOut := e.tool("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}
	e.service("crash", "crash.test", 1, "start_timeout: 30s\nargs: [\"-port={port}\", \"-fail-start\"]\n")
	e.service("web", "web.test", 1, "")
	for _, args := range [][]string{{"reload"}, {"stop", "crash"}, {"start", "crash"}} {
		began := time.Now()
		code, out, errOut := e.tool(args...)
		took := time.Since(began)
		if args[0] == "stop" {
			if code != 0 {
				t.Fatalf("smoothtool stop crash: exit %d\n%s%s", code, out, errOut)
			}
			continue
		}
		all := out + errOut
		if code != 1 || took > 10*time.Second {
			t.Errorf("smoothtool %v with a failing service: exit %d after %v, want 1 at once\n%s", args, code, took, all)
		}
		for _, want := range []string{"an instance of crash cannot start", "exited before it was ready",
			"the end of crash's log:\n", "demo: failing on purpose (-fail-start)"} {
			if !strings.Contains(all, want) {
				t.Errorf("smoothtool %v lacks %q:\n%s", args, want, all)
			}
		}
		if args[0] == "reload" && !regexp.MustCompile(`web +added`).MatchString(all) {
			t.Errorf("smoothtool reload did not add web after crash:\n%s", all)
		}
	}
}
