package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"smoothserve/config"
	"smoothserve/control/client"
)

// defaultLogLines is how many lines logs prints without -n.
const defaultLogLines = 10

// daemonLogName is the file in LogDir that smoothtool start sends
// smoothserve's stdout and stderr to.
const daemonLogName = "smoothserve.log"

// logs prints the last lines of a service's log, or of smoothserve's own,
// and with -f follows it.
func (t *tool) logs(ctx context.Context) error {
	path, err := t.logPath(ctx)
	if err != nil {
		return err
	}
	return showLog(ctx, path, t.cmd.lines, t.cmd.follow, t.out, t.notes)
}

// logPath is the file logs shows: LogDir/NAME.log of a known service, or
// the file smoothserve's stderr goes to.
func (t *tool) logPath(ctx context.Context) (string, error) {
	if t.cmd.target == "all" {
		return t.daemonLog(ctx)
	}
	name := t.cmd.target
	known, why := t.serviceNames(ctx, name)
	if !slices.Contains(known, name) {
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return "", fmt.Errorf("unknown service %q: the services are %s (all: smoothserve's own log)%s", name, list, why)
	}
	return filepath.Join(t.main.LogDir, name+".log"), nil
}

// serviceNames are the services of the service files, and, unless they
// hold want, those the daemon runs (a file removed since, or broken now);
// why says what could not be asked, for an error that lists them.
func (t *tool) serviceNames(ctx context.Context, want string) (names []string, why string) {
	if cfg, err := config.Load(t.cmd.config); err == nil {
		for _, s := range cfg.Services {
			names = append(names, s.Name)
		}
		if cfg.Service(want) != nil {
			return names, ""
		}
	} else {
		why += "; the service files do not load: " + strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	if st, err := t.statusNow(ctx); err == nil {
		for _, s := range st.Services {
			names = append(names, s.Name)
		}
	} else if !errors.Is(err, client.ErrNotRunning) {
		why += "; smoothserve did not answer: " + err.Error()
	}
	slices.Sort(names)
	return slices.Compact(names), why
}

// daemonLog is the file smoothserve writes its log to. It logs to stderr
// only: smoothtool start sends that to LogDir/smoothserve.log, systemd to
// the journal, a shell to its terminal; there is a file to show only in
// the first case.
func (t *tool) daemonLog(ctx context.Context) (string, error) {
	saved := filepath.Join(t.main.LogDir, daemonLogName)
	st, err := t.statusNow(ctx)
	if errors.Is(err, client.ErrNotRunning) {
		if _, serr := os.Stat(saved); serr != nil {
			return "", fmt.Errorf("smoothserve is not running, and there is no %s (smoothtool start writes it); "+
				"smoothserve logs to its stderr: run as a system service, see journalctl -u smoothserve", saved)
		}
		fmt.Fprintf(t.notes, "smoothtool: smoothserve is not running; %s is the log of its last start by smoothtool\n", saved)
		return saved, nil
	}
	if err != nil {
		return "", err
	}
	return stderrFile(st.Pid, t.cmd.lines, t.cmd.follow)
}

// stderrFile is the file process pid (smoothserve) writes its stderr to,
// or an error that says where it goes instead and how to read it there.
func stderrFile(pid, lines int, follow bool) (string, error) {
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid))
	if err != nil {
		return "", fmt.Errorf("cannot tell where smoothserve (pid %d) writes its log (%w): run smoothtool as its user or root", pid, err)
	}
	prefix := fmt.Sprintf("smoothserve (pid %d) logs to its stderr, which is ", pid)
	switch {
	case strings.HasPrefix(target, "socket:"):
		if unit := systemdUnit(pid); unit != "" {
			hint := fmt.Sprintf("journalctl -u %s -n %d", unit, lines)
			if follow {
				hint += " -f"
			}
			return "", fmt.Errorf("%sthe systemd journal (unit %s), not a file: %s", prefix, unit, hint)
		}
		return "", fmt.Errorf("%sa socket (%s), not a file: see whatever started it (under systemd: journalctl -u smoothserve)", prefix, target)
	case strings.HasPrefix(target, "pipe:"):
		return "", fmt.Errorf("%sa pipe, not a file: see whatever started it", prefix)
	case strings.HasSuffix(target, " (deleted)"):
		return "", fmt.Errorf("%s%s, which was deleted: restart it (smoothtool stop all, then start) for a log file", prefix, target)
	}
	info, err := os.Stat(target)
	if err != nil {
		return "", fmt.Errorf("%s%s: %w", prefix, target, err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s%s, not a file (a terminal: it runs in the foreground there)", prefix, target)
	}
	return target, nil
}

// systemdUnit is the systemd service unit process pid runs in, from its
// cgroup ("0::/system.slice/smoothserve.service"), or "".
func systemdUnit(pid int) string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, path, _ := strings.Cut(sc.Text(), "::")
		for _, part := range slices.Backward(strings.Split(path, "/")) {
			if strings.HasSuffix(part, ".service") {
				return part
			}
		}
	}
	return ""
}

// showLog prints the last lines of the file at path, and with follow the
// lines written to it after, until ctx is done.
func showLog(ctx context.Context, path string, lines int, follow bool, out, notes io.Writer) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !follow {
			return fmt.Errorf("no log yet at %s: the service has not run since LogDir was made (-f waits for it)", path)
		}
		fmt.Fprintf(notes, "smoothtool: no log yet at %s; waiting for it\n", path)
		return newFollower(path, nil, 0, out, notes).run(ctx)
	}
	if err != nil {
		return err
	}
	end, err := writeLast(f, lines, out)
	if err != nil || !follow {
		f.Close()
		return err
	}
	return newFollower(path, f, end, out, notes).run(ctx)
}
