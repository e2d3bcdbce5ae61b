package conformance

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"smoothserve/internal/syncbuf"
)

// child is a process the suite started.
//
// Ownership: the goroutine started by startChild owns cmd.Wait and closes
// done; err is valid once done is closed.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
	once sync.Once
}

// startChild starts argv in dir, with env added to the suite's, keeping
// its output.
func startChild(name, dir string, argv []string, env []string) (*child, error) {
	c := &child{name: name, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig, then SIGKILL after grace; safe to call twice.
func (c *child) stop(sig syscall.Signal, grace time.Duration) {
	c.once.Do(func() {
		if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			c.cmd.Process.Kill()
		}
		select {
		case <-c.done:
		case <-time.After(grace):
			c.cmd.Process.Kill()
			<-c.done
		}
	})
}
