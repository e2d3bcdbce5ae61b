package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// fleetPlaybook is the example's playbook, which the test runs as it is,
// with an inventory of its own hosts.
var fleetPlaybook = filepath.Join("..", "examples", "fleet", "rollout.yml")

// fleetRelease is what a rollout brings: a new service binary, a new
// smoothserve, or both ("" for neither).
type fleetRelease struct {
	service     string // copied over each host's app/demo, then restart all
	smoothserve string // copied over each host's bin/smoothserve, then upgrade
}

// rollout rolls the release out to every host, one at a time, with the
// example playbook when ansible-playbook is given, or else with the
// playbook's steps done here.
func (f *fleet) rollout(lb *haproxyLB, ansible string, rel fleetRelease) {
	f.t.Helper()
	if ansible != "" {
		f.rolloutByAnsible(lb, ansible, rel)
		return
	}
	f.t.Logf("ansible-playbook is not installed: the test takes the playbook's steps itself")
	for _, h := range f.hosts {
		f.rolloutHost(lb, h, rel)
	}
}

// rolloutByAnsible runs examples/fleet/rollout.yml against an inventory of
// the fleet's folders, as examples/fleet/inventory.yml lays one out.
func (f *fleet) rolloutByAnsible(lb *haproxyLB, ansible string, rel fleetRelease) {
	t := f.t
	t.Helper()
	dir := t.TempDir()
	hosts := map[string]any{}
	for _, h := range f.hosts {
		hosts[h.name] = map[string]any{
			"smoothtool":         h.tool,
			"smoothserve_binary": h.bin,
			"smoothserve_config": h.config,
			"service_binary":     h.demo,
			"admin_addr":         h.adminAddr,
		}
	}
	inventory := map[string]any{"all": map[string]any{
		"vars": map[string]any{
			"haproxy_stats_url": lb.statsURL,
			"haproxy_backend":   "smoothserve",
			"drain_timeout":     "30s",
			"lb_wait_retries":   30,
			"lb_wait_delay":     1,
		},
		"children": map[string]any{"smoothserve": map[string]any{
			"vars": map[string]any{
				"ansible_connection":         "local",
				"ansible_python_interpreter": "{{ ansible_playbook_python }}",
			},
			"hosts": hosts,
		}},
	}}
	invFile := filepath.Join(dir, "inventory.json") // JSON is YAML: the yaml inventory plugin reads it
	extra := map[string]string{}
	if rel.service != "" {
		extra["release_binary"] = rel.service
	}
	if rel.smoothserve != "" {
		extra["new_smoothserve_binary"] = rel.smoothserve
	}
	writeJSON := func(path string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, string(b))
	}
	writeJSON(invFile, inventory)
	extraFile := filepath.Join(dir, "extra.json")
	writeJSON(extraFile, extra)
	// Nothing of the user's ansible setup (~/.ansible.cfg, ~/.ansible)
	// takes part: an empty configuration, and temporary folders here.
	writeFile(t, filepath.Join(dir, "ansible.cfg"), "")
	playbook, err := filepath.Abs(fleetPlaybook)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ansible, "-i", invFile, "-e", "@"+extraFile, playbook)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"),
		"ANSIBLE_HOME="+filepath.Join(dir, "home"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_PIPELINING=1", // modules run without a copy to a temporary file first
		"ANSIBLE_RETRY_FILES_ENABLED=0",
	)
	// Its own process group, so that a timeout kills the modules it runs
	// too (by that group, which this test made).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err = cmd.Run()
	t.Logf("ansible-playbook %s (%v):\n%s", filepath.Base(playbook), time.Since(began).Round(time.Millisecond), trimAnsible(out.String()))
	if err != nil {
		t.Fatalf("ansible-playbook: %v", err)
	}
}

// trimAnsible drops the blank lines and asterisk rulers of ansible's
// output, for a shorter log.
func trimAnsible(s string) string {
	var kept []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, " *")
		if line != "" {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

// rolloutHost is the playbook's steps for one host.
func (f *fleet) rolloutHost(lb *haproxyLB, h *fleetHost, rel fleetRelease) {
	t := f.t
	t.Helper()
	others := func(st map[string]map[string]string) bool {
		for name, row := range st {
			if name != h.name && strings.HasPrefix(row["status"], "UP") {
				return true
			}
		}
		return false
	}
	lb.waitFor(h.name+": another host UP", others)
	if code, out, errOut := h.run("drain", "--wait", "--timeout", "30s"); code != 0 {
		t.Fatalf("%s: smoothtool drain --wait: exit %d\n%s%s", h.name, code, out, errOut)
	} else {
		t.Logf("%s: smoothtool drain --wait:\n%s%s", h.name, out, errOut)
	}
	lb.waitFor(h.name+" not UP", func(st map[string]map[string]string) bool { return !strings.HasPrefix(st[h.name]["status"], "UP") })
	if rel.service != "" {
		copyFile(t, rel.service, h.demo)
		if code, out, errOut := h.run("restart", "all"); code != 0 {
			t.Fatalf("%s: smoothtool restart all: exit %d\n%s%s", h.name, code, out, errOut)
		}
	}
	if rel.smoothserve != "" {
		h.installSmoothserve(rel.smoothserve)
		if code, out, errOut := h.run("upgrade"); code != 0 {
			t.Fatalf("%s: smoothtool upgrade: exit %d\n%s%s", h.name, code, out, errOut)
		}
		if s := h.hostState(); !slices.Contains([]string{"draining", "drained"}, s) {
			t.Errorf("%s: after the upgrade, status says the host is %q, want still drained", h.name, s)
		}
		if code, _ := h.health(); code != 503 {
			t.Errorf("%s: after the upgrade, /health answers %d, want still 503", h.name, code)
		}
	}
	if code, out, errOut := h.run("undrain"); code != 0 {
		t.Fatalf("%s: smoothtool undrain: exit %d\n%s%s", h.name, code, out, errOut)
	}
	lb.waitFor(h.name+" UP", func(st map[string]map[string]string) bool { return st[h.name]["status"] == "UP" })
}

// waitFor polls HAProxy's stats until cond holds of them, for 30 s at most.
func (lb *haproxyLB) waitFor(what string, cond func(map[string]map[string]string) bool) {
	lb.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := lb.stats()
		if err == nil && cond(st) {
			return
		}
		if time.Now().After(deadline) {
			lb.t.Fatalf("waited 30s for HAProxy: %s; stats %v, %v", what, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
