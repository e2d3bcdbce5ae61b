package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tests of install_smoothserve.sh install nothing: they read the unit
// --print-unit prints, and check that installing is refused where it must be
// (a bad configuration, no root, no systemd) before anything is written.

// installEnv is a bin folder as a release unpacks it: smoothserve,
// smoothtool, install_smoothserve.sh, smoothserve.yaml and a service file.
type installEnv struct {
	*env
	dir    string // e.dir with symbolic links resolved, as the script writes it
	script string // the copy of install_smoothserve.sh in dir
}

func newInstallEnv(t *testing.T, serviceExtra string) *installEnv {
	t.Helper()
	e := newEnv(t, 8)
	e.service("web", "web.test", 1, serviceExtra)
	copyFile(t, bin.smoothserve, filepath.Join(e.dir, "smoothserve"))
	copyFile(t, bin.smoothtool, filepath.Join(e.dir, "smoothtool"))
	script := filepath.Join(e.dir, "install_smoothserve.sh")
	copyFile(t, filepath.Join("..", "install_smoothserve.sh"), script)
	dir, err := filepath.EvalSymlinks(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	return &installEnv{env: e, dir: dir, script: script}
}

// scriptRun is how one run of the script ended.
type scriptRun struct {
	code           int
	stdout, stderr string
}

// runScript runs argv (bash and the script, perhaps behind setpriv) in cwd
// and waits at most a minute.
func runScript(t *testing.T, cwd string, argv ...string) scriptRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = cwd
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := scriptRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running %v: %v\nstderr:\n%s", argv, err, r.stderr)
	}
	return r
}

// printUnit runs the script with --print-unit from another folder (it finds
// the binaries beside itself) and returns the unit.
func (ie *installEnv) printUnit(args ...string) string {
	ie.t.Helper()
	r := runScript(ie.t, ie.t.TempDir(), append([]string{"bash", ie.script, "--print-unit"}, args...)...)
	if r.code != 0 {
		ie.t.Fatalf("--print-unit: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	return r.stdout
}

func TestInstallPrintedUnitPassesSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is not installed, so the unit cannot be verified: it comes with the systemd package (apt-get install systemd): %v", err)
	}
	ie := newInstallEnv(t, "")
	for _, args := range [][]string{nil, {"--name", "smoothserve-e2e", "--user", "root"}} {
		unit := ie.printUnit(args...)
		// verify wants a file named like a unit, and checks that ExecStart's
		// binary exists: the unit points at the copy in ie.dir.
		path := filepath.Join(t.TempDir(), "smoothserve.service")
		writeFile(t, path, unit)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
		cancel()
		// verify exits 0 even when it ignores a line it cannot parse: only
		// silence means no warning.
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify of the unit from --print-unit %v: %v\n%s\nunit:\n%s", args, err, out, unit)
		}
	}
}

func TestInstallPrintUnitDirectives(t *testing.T) {
	tests := []struct {
		name         string
		mainExtra    string // more lines for smoothserve.yaml
		serviceExtra string // more lines for services/web.yaml
		args         []string
		want         []string // lines the unit must hold, with DIR for the bin folder
		notWant      []string // prefixes no line may have
	}{
		{"defaults", "", "", nil, []string{
			"Description=smoothserve reverse proxy and process supervisor (DIR/smoothserve.yaml)",
			"After=network.target",
			"Type=notify",
			"NotifyAccess=all",
			"ExecStart=DIR/smoothserve --config DIR/smoothserve.yaml",
			"ExecReload=/bin/kill -HUP $MAINPID",
			"WorkingDirectory=DIR",
			"KillMode=mixed",
			"TimeoutStartSec=90", // start_timeout 30 s + 60 s
			"TimeoutStopSec=150", // UpgradeDrainTimeout 60 s + 2 × stop_timeout 30 s + kill_timeout 10 s + 20 s
			"Restart=on-failure",
			"RestartSec=1",
			"LimitNOFILE=65536",
			"WantedBy=multi-user.target",
		}, []string{"User="}},
		{"timeouts from the configuration", "UpgradeDrainTimeout: \"2m\"  # two minutes\n",
			"stop_timeout: 45.5\nstart_timeout: \"1m30s\"\nkill_timeout: 15s\n", nil,
			[]string{"TimeoutStartSec=150", "TimeoutStopSec=247"}, nil},
		{"user, name and config", "", "", []string{"--user", "root", "--name", "web-proxy", "--config", "DIR/other.yaml"},
			[]string{"User=root", "ExecStart=DIR/smoothserve --config DIR/other.yaml", "# Upgrade to a new binary without dropping a request: systemctl reload web-proxy"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ie := newInstallEnv(t, tt.serviceExtra)
			ie.writeMain(tt.mainExtra)
			copyFile(t, ie.config, filepath.Join(ie.dir, "other.yaml"))
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "DIR", ie.dir)
			}
			unit := ie.printUnit(args...)
			lines := map[string]bool{}
			for _, l := range strings.Split(unit, "\n") {
				lines[l] = true
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "DIR", ie.dir); !lines[w] {
					t.Errorf("the unit has no line %q:\n%s", w, unit)
				}
			}
			for l := range lines {
				for _, nw := range tt.notWant {
					if strings.HasPrefix(l, nw) {
						t.Errorf("the unit has a line %q, want none starting %q", l, nw)
					}
				}
			}
		})
	}
}

func TestInstallFindsTheBinariesWithDir(t *testing.T) {
	ie := newInstallEnv(t, "")
	// The repository's own script, run elsewhere, pointed at the bin folder.
	script, err := filepath.Abs(filepath.Join("..", "install_smoothserve.sh"))
	if err != nil {
		t.Fatal(err)
	}
	r := runScript(t, t.TempDir(), "bash", script, "--print-unit", "--dir", ie.dir)
	want := fmt.Sprintf("ExecStart=%s/smoothserve --config %s/smoothserve.yaml", ie.dir, ie.dir)
	if r.code != 0 || !strings.Contains(r.stdout, want+"\n") {
		t.Errorf("--print-unit --dir %s: exit %d, want 0 and %q\nstdout:\n%s\nstderr:\n%s", ie.dir, r.code, want, r.stdout, r.stderr)
	}

	r = runScript(t, t.TempDir(), "bash", script, "--print-unit", "--dir", t.TempDir())
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "no executable smoothserve in") {
		t.Errorf("--print-unit --dir of an empty folder: exit %d, want 1, no unit and a message naming smoothserve\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestInstallRefusesABadConfiguration(t *testing.T) {
	ie := newInstallEnv(t, "instance_cout: 3\n")
	r := runScript(t, ie.dir, "bash", ie.script, "--print-unit")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	if r.stdout != "" {
		t.Errorf("a unit was printed for a bad configuration:\n%s", r.stdout)
	}
	for _, w := range []string{"web.yaml:7: instance_cout", "nothing was installed"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
		}
	}
}

func TestInstallHelp(t *testing.T) {
	ie := newInstallEnv(t, "")
	r := runScript(t, ie.dir, "bash", ie.script, "--help")
	if r.code != 0 {
		t.Errorf("--help: exit %d, want 0\n%s", r.code, r.stderr)
	}
	for _, w := range []string{"--print-unit", "--uninstall", "--dir", "--config", "--name", "--user", "systemctl reload"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("--help does not mention %s:\n%s", w, r.stdout)
		}
	}
	r = runScript(t, ie.dir, "bash", ie.script, "--bogus")
	if r.code != 2 || !strings.Contains(r.stderr, "unknown argument --bogus") {
		t.Errorf("--bogus: exit %d, want 2 naming the argument\n%s", r.code, r.stderr)
	}
}

// testUnitName is a unit name no real installation uses: the tests check
// that nothing is written under it.
var testUnitName = fmt.Sprintf("smoothserve-e2e-%d", os.Getpid())

func assertNoUnitWritten(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/etc/systemd/system/" + testUnitName + ".service", "/etc/systemd/system/" + testUnitName + ".service.tmp"} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("%s was written", p)
		}
	}
}

func TestInstallNeedsRoot(t *testing.T) {
	ie := newInstallEnv(t, "")
	var asUser []string
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Fatalf("running as root, and no setpriv (util-linux) to run the script as nobody: %v", err)
		}
		asUser = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
		// nobody must be able to read the script: open the two folders
		// t.TempDir made (0700) to it.
		for _, d := range []string{ie.env.dir, filepath.Dir(ie.env.dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, action := range [][]string{nil, {"--uninstall"}} {
		r := runScript(t, ie.dir, slices.Concat(asUser, []string{"bash", ie.script, "--name", testUnitName}, action)...)
		if r.code != 1 || !strings.Contains(r.stderr, "needs root") {
			t.Errorf("%v as a user: exit %d, want 1 saying it needs root\nstdout:\n%s\nstderr:\n%s", action, r.code, r.stdout, r.stderr)
		}
	}
	assertNoUnitWritten(t)

	// --print-unit needs no root.
	r := runScript(t, ie.dir, slices.Concat(asUser, []string{"bash", ie.script, "--print-unit"})...)
	if r.code != 0 || !strings.Contains(r.stdout, "Type=notify\n") {
		t.Errorf("--print-unit as a user: exit %d, want 0 and a unit\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestInstallWithoutSystemdWritesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: as a user the script stops at the root check (TestInstallNeedsRoot)")
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs here: this test would install a real service")
	}
	ie := newInstallEnv(t, "")
	for _, action := range [][]string{nil, {"--uninstall"}} {
		r := runScript(t, ie.dir, slices.Concat([]string{"bash", ie.script, "--name", testUnitName}, action)...)
		if r.code != 1 || !strings.Contains(r.stderr, "systemd is not running") {
			t.Errorf("%v without systemd: exit %d, want 1 saying systemd is not running\nstdout:\n%s\nstderr:\n%s", action, r.code, r.stdout, r.stderr)
		}
	}
	assertNoUnitWritten(t)
}

// TestInstallLogrotateRotatesEveryLog runs the real logrotate on what
// --print-logrotate prints, for a configuration with a comment after
// LogDir, an access log outside LogDir and services named like the
// access log ("accounts", "a"): logrotate takes it without an error, and
// a forced rotation rotates every log, each by its own rule.
func TestInstallLogrotateRotatesEveryLog(t *testing.T) {
	logrotate := needCommand(t, "logrotate", "logrotate")
	ie := newInstallEnv(t, "access_log: web-access/web.log\n")
	ie.writeMain("LogDir: ./logs   # the instances' output, and the access log\n")
	ie.service("accounts", "accounts.test", 1, "")
	ie.service("a", "a.test", 1, "")
	r := runScript(t, ie.t.TempDir(), "bash", ie.script, "--print-logrotate", "--name", "smoothserve-e2e")
	if r.code != 0 {
		t.Fatalf("--print-logrotate: exit %d\n%s", r.code, r.stderr)
	}
	logs := filepath.Join(ie.dir, "logs")
	files := []string{filepath.Join(ie.dir, "web-access", "web.log")}
	for _, name := range []string{"access", "web", "accounts", "a"} {
		files = append(files, filepath.Join(logs, name+".log"))
	}
	for _, f := range files {
		writeFile(t, f, "a line\n")
	}
	conf := filepath.Join(t.TempDir(), "smoothserve-e2e")
	writeFile(t, conf, r.stdout)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, logrotate, "--verbose", "--force", "--state", conf+".state", conf).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("error")) {
		t.Fatalf("logrotate: %v\n%s\nconfiguration:\n%s", err, out, r.stdout)
	}
	for _, f := range files {
		if _, err := os.Stat(f + ".1"); err != nil {
			t.Errorf("%s was not rotated: %v\nlogrotate said:\n%s", f, err, out)
		}
	}
	for _, f := range files[1:] {
		truncated := !strings.HasSuffix(f, "access.log")
		if _, err := os.Stat(f); truncated != (err == nil) {
			t.Errorf("%s after the rotation: %v; want it truncated in place (copytruncate) only if it is an instance's output", f, err)
		}
	}
}
