package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"smoothserve/config"
	"smoothserve/control/api"
	"smoothserve/control/client"
	"smoothserve/internal/procstat"
)

// How stop all waits for the daemon to exit: it drains every instance
// (each up to its stop_timeout, then kill_timeout for its process group,
// in parallel) before it does. exitTimeout at least; more where the
// configuration's timeouts add up to more (exitBudget).
const (
	exitTimeout  = 120 * time.Second
	exitNoteEach = 10 * time.Second
)

// exitBudget is how long stop all waits for the daemon of cfg (nil: not
// readable) to exit: the proxy's drain and the instances' (the longest
// stop_timeout each), the longest kill_timeout, and a margin.
func exitBudget(cfg *config.Config) time.Duration {
	if cfg == nil {
		return exitTimeout
	}
	var stop, kill time.Duration
	for _, s := range cfg.Services {
		stop, kill = max(stop, s.StopTimeout), max(kill, s.KillTimeout)
	}
	return max(exitTimeout, 2*stop+kill+30*time.Second)
}

// stopDaemon stops the daemon as SIGTERM does (or, with --force, kills
// it and its instances at once) and waits until its process is gone.
func (t *tool) stopDaemon(ctx context.Context) error {
	st, err := t.statusNow(ctx)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, quickTimeout)
	defer cancel()
	if err := t.client.Shutdown(sctx, t.cmd.force); err != nil {
		return err
	}
	how := "gracefully: requests in flight finish, then every instance is drained"
	if t.cmd.force {
		how = "at once: every instance is killed"
	}
	fmt.Fprintf(t.notes, "smoothtool: smoothserve (pid %d) is stopping %s\n", st.Pid, how)
	cfg, _ := config.Load(t.cmd.config)
	if err := waitGone(ctx, st.Pid, exitBudget(cfg), func(waited time.Duration) {
		fmt.Fprintf(t.notes, "smoothtool: still waiting for smoothserve (pid %d) to exit: %v\n", st.Pid, waited)
	}); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "smoothserve (pid %d) stopped\n", st.Pid)
	return nil
}

// waitGone waits until process pid no longer exists, calling note every
// exitNoteEach.
func waitGone(ctx context.Context, pid int, timeout time.Duration, note func(waited time.Duration)) error {
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	nextNote := start.Add(exitNoteEach)
	for !pidGone(pid) {
		select {
		case <-deadline.C:
			return fmt.Errorf("smoothserve (pid %d) is still running after %v", pid, timeout)
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting for smoothserve (pid %d) to exit: %w", pid, ctx.Err())
		case now := <-poll.C:
			if now.After(nextNote) {
				note(now.Sub(start).Round(time.Second))
				nextNote = nextNote.Add(exitNoteEach)
			}
		}
	}
	return nil
}

// pidGone reports whether process pid has exited: it does not exist, or
// is a zombie its parent has yet to reap.
func pidGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	// EPERM too means it exists (another user's).
	st, err := procstat.Read(pid)
	return err == nil && st.Exited()
}

// stopService stops one service and waits until its instances are.
func (t *tool) stopService(ctx context.Context) error {
	if err := t.client.Stop(ctx, t.cmd.target); err != nil {
		return failed("stopping "+t.cmd.target, err)
	}
	t.printStatus(ctx)
	return nil
}

// restart rolls the instances and prints what each slot became.
func (t *tool) restart(ctx context.Context) error {
	rollouts, err := t.client.Restart(ctx, t.cmd.target)
	writeRollouts(t.out, rollouts)
	if err != nil {
		return fmt.Errorf("%w%s", failed("restarting "+t.cmd.target, err), logTails(rollouts))
	}
	if len(rollouts) == 0 {
		fmt.Fprintln(t.out, "no running service to restart")
	}
	return nil
}

// failed is err of the operation what, which a daemon that is not there
// did not even begin.
func failed(what string, err error) error {
	if errors.Is(err, client.ErrNotRunning) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// logTails is the service log lines that failed rollouts carry.
func logTails(rollouts []*api.Rollout) string {
	var b strings.Builder
	for _, r := range rollouts {
		b.WriteString(api.EndOfLog(r.Service, r.LogTail))
	}
	return b.String()
}
