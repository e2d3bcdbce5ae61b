package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// What a restart and an upgrade cost smoothserve with no load: n cycles
// back to back, nothing else asked of it, every CPU sampled by perf, the
// samples counted by process name. The loaded loops' figure (cpuPerCycle)
// also counts the request path's loss of efficiency while other processes
// take the cores (fewer requests per read and write), which a /bin/true
// loop shows too; this one is the cycle's own work.

// quietCycleCount is the cycles of each kind measured.
const quietCycleCount = 20

// A quietCycle is what one kind of cycle took, per cycle.
type quietCycle struct {
	name     string // "restart", "upgrade"
	cycles   int
	daemons  time.Duration // smoothserve's processes
	tool     time.Duration // smoothtool
	instance time.Duration // the instances (a restart starts new ones)
}

// quietCycles measures quietCycleCount restarts and as many upgrades of d,
// when b.perf; nil otherwise. A cycle that fails ends the measure of its
// kind (an error of the result), not the other kind's, unless smoothserve
// is not ready after it.
func (b *bench) quietCycles(ctx context.Context, d *daemon) ([]quietCycle, error) {
	if !b.perf {
		return nil, nil
	}
	var out []quietCycle
	var errs []error
	for _, k := range []struct {
		name  string
		cycle func(*daemon) error
	}{{"restart", (*daemon).restartCycle}, {"upgrade", (*daemon).upgradeCycle}} {
		if q, err := b.quietCycle(ctx, d, k.name, k.cycle); err != nil {
			errs = append(errs, fmt.Errorf("%s cycles without load: %w", k.name, err))
		} else {
			out = append(out, q)
		}
		if _, err := d.waitReady(time.Minute, nil); err != nil {
			errs = append(errs, fmt.Errorf("smoothserve after the %s cycles without load: %w", k.name, err))
			break
		}
	}
	return out, errors.Join(errs...)
}

func (b *bench) quietCycle(ctx context.Context, d *daemon, name string, cycle func(*daemon) error) (quietCycle, error) {
	q := quietCycle{name: name}
	file := filepath.Join(b.dir, "perf-quiet.data")
	defer os.Remove(file)
	args := perfRecord(file)
	args = args[:len(args)-1] // no workload: until interrupted
	perf := exec.CommandContext(ctx, args[0], args[1:]...)
	if err := perf.Start(); err != nil {
		return q, fmt.Errorf("perf: %w", err)
	}
	time.Sleep(300 * time.Millisecond) // perf samples from here on
	var cycleErr error
	for q.cycles < quietCycleCount {
		if cycleErr = cycle(d); cycleErr != nil {
			break
		}
		q.cycles++
	}
	perf.Process.Signal(os.Interrupt)
	if err := perf.Wait(); err != nil && !isInterrupted(err) {
		return q, fmt.Errorf("perf: %w", err)
	}
	if cycleErr != nil {
		return q, cycleErr
	}
	samples, err := perfReport(ctx, file)
	if err != nil {
		return q, err
	}
	per := func(role string) time.Duration {
		return time.Duration(float64(samples[role]) / perfHz * float64(time.Second) / float64(q.cycles))
	}
	q.daemons, q.tool, q.instance = per("proxy"), per("smoothtool"), per("instances")
	return q, nil
}

// isInterrupted reports whether perf ended on the interrupt it was sent:
// it re-raises SIGINT (or exits 130), and any other end is a failure.
func isInterrupted(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal() == syscall.SIGINT
	}
	return ee.ExitCode() == 130
}
