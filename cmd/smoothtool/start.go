package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"smoothserve/config"
	"smoothserve/control/api"
	"smoothserve/control/client"
	"smoothserve/internal/logtail"
)

// How start waits: the longest start_timeout of the services plus
// readyMargin, asking the status every pollInterval; logTailLines of
// smoothserve.log are shown when the daemon exits instead, and of a
// service's log when an instance of it fails.
const (
	readyMargin         = 15 * time.Second
	defaultStartTimeout = 30 * time.Second // a service's start_timeout when none can be read
	pollInterval        = 100 * time.Millisecond
	logTailLines        = 20
)

// start starts the daemon when none answers for this configuration, or
// else asks it to start the stopped services (or one), and waits until
// they are ready.
func (t *tool) start(ctx context.Context) error {
	_, err := t.statusNow(ctx)
	if errors.Is(err, client.ErrNotRunning) {
		return t.startDaemon(ctx)
	}
	if err != nil {
		return err
	}
	t.warnInvalidMain()
	// The daemon runs the configuration it loaded; the files as they are
	// now say how long its instances may take, or, broken, nothing.
	budget := readyMargin + defaultStartTimeout
	cfg, cfgErr := config.Load(t.cmd.config)
	if cfgErr == nil {
		budget = readyBudget(cfg)
	}
	wctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err = t.client.Start(wctx, t.cmd.target)
	switch {
	case errors.Is(err, api.ErrUnknownService) && cfgErr == nil && cfg.Service(t.cmd.target) != nil:
		return fmt.Errorf("%s is not in the configuration smoothserve runs: its file was added since; run smoothtool reload to start it", t.cmd.target)
	case errors.Is(err, api.ErrUnknownService):
		return err // nothing was started: no status to show
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%s not ready after %v (the longest start_timeout + %v): %w", t.cmd.target, budget, readyMargin, err)
	}
	t.printStatus(ctx)
	return err
}

// startDaemon starts smoothserve in the background and waits until every
// enabled service is ready.
func (t *tool) startDaemon(ctx context.Context) error {
	cfg, err := config.Load(t.cmd.config)
	if err != nil {
		return configError(err)
	}
	if err := checkService(cfg, t.cmd.target); err != nil {
		return err
	}
	exe, err := daemonExecutable()
	if err != nil {
		return err
	}
	d, err := spawn(exe, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(t.notes, "smoothtool: started smoothserve (pid %d); its log: %s\n", d.pid, d.logPath)

	budget := readyBudget(cfg)
	deadline := time.NewTimer(budget)
	defer deadline.Stop()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	var last *api.Status
	for {
		select {
		case err := <-d.exited:
			tail := "(nothing)"
			if lines := logtail.Lines(d.logPath, d.logOffset, logTailLines); len(lines) > 0 {
				tail = strings.Join(lines, "\n  ")
			}
			return fmt.Errorf("smoothserve exited while starting (%v); the end of %s:\n  %s",
				exitText(err), d.logPath, tail)
		case <-deadline.C:
			if last != nil {
				writeStatus(t.out, last, time.Now(), false)
			}
			return fmt.Errorf("smoothserve (pid %d) is running but not ready after %v (the longest start_timeout + %v); see %s",
				d.pid, budget, readyMargin, d.logPath)
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting (%w); smoothserve (pid %d) keeps running", ctx.Err(), d.pid)
		case <-poll.C:
			st, err := t.statusNow(ctx)
			if err != nil || st.Pid != d.pid {
				continue // not listening yet
			}
			last = st
			if allReady(st, cfg) {
				writeStatus(t.out, st, time.Now(), false)
				return nil
			}
			if svc, why := failedInstance(st); why != "" {
				writeStatus(t.out, st, time.Now(), false)
				return d.instanceFailed(svc, why)
			}
		}
	}
}

// configError is how smoothtool words an error of config.Load or
// config.LoadMainLenient: a file that cannot be read is not there, not invalid.
func configError(err error) error {
	if errors.Is(err, config.ErrUnreadable) {
		return err
	}
	return fmt.Errorf("configuration is invalid:\n%w", err)
}

// checkService reports a NAME to start that the configuration does not run.
func checkService(cfg *config.Config, name string) error {
	if name == "all" {
		return nil
	}
	for _, s := range cfg.Services {
		if s.Name == name {
			if !s.Enabled {
				return fmt.Errorf("%w: %s (enabled: false in %s)", api.ErrDisabled, name, s.File)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s: no service of that name in %s", api.ErrUnknownService, name, cfg.SubConfigDir)
}

// readyBudget is how long start waits for every instance to be ready.
func readyBudget(cfg *config.Config) time.Duration {
	longest := time.Duration(0)
	for _, s := range cfg.Services {
		if s.Enabled {
			longest = max(longest, s.StartTimeout)
		}
	}
	if longest == 0 {
		longest = defaultStartTimeout
	}
	return longest + readyMargin
}

// allReady reports whether st shows every enabled service of cfg running
// with all its instances ready.
func allReady(st *api.Status, cfg *config.Config) bool {
	running := map[string]bool{}
	for _, s := range st.Services {
		if s.State != api.ServiceRunning {
			continue
		}
		for _, in := range s.Instances {
			// Unhealthy since: it passed its start, and is the health
			// check's business now; drained: ready, kept out on purpose.
			if in.State != api.StateReady && in.State != api.StateUnhealthy && in.State != api.StateDrained {
				return false
			}
		}
		running[s.Name] = true
	}
	// Right after start a service not yet taken up shows as stopped.
	for _, s := range cfg.Services {
		if s.Enabled && !running[s.Name] {
			return false
		}
	}
	return true
}

// failedInstance names a service with an instance that failed to start,
// or was lost, and says why. Waiting will not make it ready: another
// process holds its port, or it exits at once (a wrong argument, a missing
// file) and will again; smoothserve keeps trying it with backoff all the
// same.
func failedInstance(st *api.Status) (service, why string) {
	for _, s := range st.Services {
		for _, in := range s.Instances {
			if in.State != api.StateReady && in.Error != "" {
				return s.Name, in.Error
			}
		}
	}
	return "", ""
}

// instanceFailed is the error of a start that stops waiting for service
// because an instance of it failed: why, and the end of the service's log,
// where its instances say what went wrong.
func (d *spawned) instanceFailed(service, why string) error {
	retry := "it tries again with backoff"
	if strings.Contains(why, api.PortInUse) {
		retry += " until the port is free"
	}
	log := filepath.Join(d.logDir, service+".log")
	return fmt.Errorf("smoothserve (pid %d) is running, but an instance of %s cannot start (%s); %s (or `smoothtool stop`); see %s%s",
		d.pid, service, why, retry, d.logPath, api.EndOfLog(service, logtail.Lines(log, d.serviceLogFrom[service], logTailLines)))
}

// daemonExecutable is the smoothserve beside smoothtool's own executable,
// else the one in PATH.
func daemonExecutable() (string, error) {
	self, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(self), "smoothserve")
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("smoothserve")
	if err != nil {
		return "", fmt.Errorf("no smoothserve executable beside %s or in PATH", self)
	}
	return p, nil
}

// spawned is a daemon smoothtool started.
type spawned struct {
	pid       int
	exited    chan error // its Wait's result
	logPath   string
	logOffset int64 // size of the log before it started: its lines come after

	// The services' logs, LogDir/NAME.log, and the size of each before the
	// daemon started: what its instances write comes after.
	logDir         string
	serviceLogFrom map[string]int64
}

// spawn starts exe as the daemon of cfg: in its own session (no terminal,
// and no signal of this one's, Ctrl-C or hangup, reaches it), stdin
// /dev/null, stdout and stderr appended to LogDir/smoothserve.log.
func spawn(exe string, cfg *config.Config) (*spawned, error) {
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the log folder: %w", err)
	}
	logPath := filepath.Join(cfg.LogDir, "smoothserve.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	off, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	serviceLogFrom := map[string]int64{}
	for _, s := range cfg.Services {
		if info, err := os.Stat(filepath.Join(cfg.LogDir, s.Name+".log")); err == nil {
			serviceLogFrom[s.Name] = info.Size()
		}
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	cmd := exec.Command(exe, "--config", cfg.Path)
	cmd.Dir = cfg.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", exe, err)
	}
	d := &spawned{pid: cmd.Process.Pid, exited: make(chan error, 1), logPath: logPath, logOffset: off,
		logDir: cfg.LogDir, serviceLogFrom: serviceLogFrom}
	// While smoothtool waits it is the parent, and reaps the daemon if it
	// fails; once smoothtool exits, init adopts it.
	go func() { d.exited <- cmd.Wait() }()
	return d, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
