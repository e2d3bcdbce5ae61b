package acmetest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a process gets to exit on SIGTERM before SIGKILL.
const stopGrace = 3 * time.Second

// proc is one process Start started, with its output in a file.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when Wait has returned
	waitErr error         // valid once done is closed
}

// startProc starts bin with args and env, its stdout and stderr both going
// to a new file at logPath. The file is handed to the process directly (no
// pipe, no copying goroutine), so whatever the process has written is in
// the file when its write call returns.
func startProc(name, bin string, args, env []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("acmetest: %w", err)
	}
	defer f.Close() // the child has its own copy of the descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("acmetest: starting %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited returns the reason the process ended, or nil while it runs.
func (p *proc) exited() error {
	select {
	case <-p.done:
		if p.waitErr == nil {
			return fmt.Errorf("%s exited with status 0", p.name)
		}
		return fmt.Errorf("%s exited: %v", p.name, p.waitErr)
	default:
		return nil
	}
}

// stop ends the process: SIGTERM, then SIGKILL after stopGrace. It signals
// only this process's pid, and only while it has not been reaped (so the
// pid cannot have been reused by another process).
func (p *proc) stop() {
	if p.exited() != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopGrace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// output is what the process has written so far.
func (p *proc) output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	return string(b)
}

// countLines counts the lines of the output that contain substr.
func (p *proc) countLines(substr string) int {
	n := 0
	for line := range strings.Lines(p.output()) {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// childEnv is the test process's environment without any PEBBLE_* setting
// (so a developer's shell cannot change pebble's behaviour under a test),
// plus set.
func childEnv(set ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PEBBLE_") {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}
