package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"smoothserve/config"
	"smoothserve/control/api"
	"smoothserve/control/client"
	"smoothserve/internal/logtail"
)

// upgrade asks the daemon to replace itself and prints the new pid. It
// checks the configuration on disk first, as smoothserve --check does: the
// new process loads it, and exits if it is invalid, which the daemon could
// only report as the new process's exit status.
func (t *tool) upgrade(ctx context.Context) error {
	// Asked first, so that nothing is said of an upgrade without a daemon.
	st, err := t.statusNow(ctx)
	if err != nil {
		return upgradeFailed(err)
	}
	path := st.Config // the file the new process loads
	if path == "" {
		path = t.main.Path
	}
	if _, err := config.Load(path); err != nil {
		return fmt.Errorf("upgrade refused; smoothserve (pid %d) goes on serving: the new process would exit at once: %w",
			st.Pid, configError(err))
	}
	log := markLog(st.Pid)
	fmt.Fprintf(t.notes, "smoothtool: upgrading smoothserve (pid %d, %s): the new process starts from its binary as it is on disk now\n",
		st.Pid, path)
	res, err := t.client.Upgrade(ctx)
	if err != nil {
		return fmt.Errorf("%w%s", upgradeFailed(err), log.since())
	}
	if res.NewPid == 0 {
		fmt.Fprintf(t.out, "smoothserve upgraded: pid %d → a new process (its pid file could not be read; see smoothserve.log)\n", res.OldPid)
		return nil
	}
	fmt.Fprintf(t.out, "smoothserve upgraded: pid %d → %d\n", res.OldPid, res.NewPid)
	return nil
}

// upgradeFailed is the error of an upgrade that did not happen. Without a
// daemon it says so, as every command does, and how to start one: there is
// no running smoothserve to go on serving.
func upgradeFailed(err error) error {
	if errors.Is(err, client.ErrNotRunning) {
		return fmt.Errorf("%w; nothing to upgrade: smoothtool start starts it", err)
	}
	return fmt.Errorf("upgrade failed; the running smoothserve goes on serving: %w", err)
}

// logMark is where a daemon logs, marked before an upgrade: the new
// process inherits its stderr, and says there why it exited.
type logMark struct {
	path  string // the log file; "": not a file
	from  int64  // its size at the mark
	where string // when it is not a file: where the log goes, and how to read it
}

// markLog marks the log of daemon pid.
func markLog(pid int) logMark {
	path, err := stderrFile(pid, logTailLines, false)
	if err != nil {
		return logMark{where: err.Error()}
	}
	info, err := os.Stat(path)
	if err != nil {
		return logMark{where: fmt.Sprintf("smoothserve (pid %d) logs to %s: %v", pid, path, err)}
	}
	return logMark{path: path, from: info.Size()}
}

// since is what the log says after the mark, to follow the error of a
// failed upgrade: its last lines, or where to read it.
func (m logMark) since() string {
	if m.path == "" {
		return "\nsmoothserve's log says more: " + m.where
	}
	return api.EndOfLog("smoothserve", logtail.Lines(m.path, m.from, logTailLines))
}
