package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// A restartMode is what happens to smoothserve while wrk measures it.
type restartMode struct {
	name string
	// loop runs restarts or upgrades until ctx is done, and lets the one
	// under way finish; nil: nothing happens (steady state).
	loop func(d *daemon, ctx context.Context) (cycles int, failures []string)
}

// The loops run back to back (the next cycle as soon as the last one is
// done), which on two cores is a restart several times a second; and paced
// at one cycle a second, still a restart or upgrade throughout the run, to
// show the cost of one against the cost of many.
var restartModes = []restartMode{
	{name: "steady state"},
	// Not smoothserve's: what any continuous loop of process starts costs
	// the others on this machine, to read the upgrade loop against.
	{name: "/bin/true loop, back to back", loop: paced((*daemon).trueCycle, 0)},
	{name: "restart loop, back to back", loop: paced((*daemon).restartCycle, 0)},
	{name: "restart loop, 1 per second", loop: paced((*daemon).restartCycle, time.Second)},
	{name: "upgrade loop, back to back", loop: paced((*daemon).upgradeCycle, 0)},
	{name: "upgrade loop, 1 per second", loop: paced((*daemon).upgradeCycle, time.Second)},
}

// paced runs cycle until ctx is done, starting one at most every gap.
func paced(cycle func(d *daemon) error, gap time.Duration) func(d *daemon, ctx context.Context) (int, []string) {
	return func(d *daemon, ctx context.Context) (cycles int, failures []string) {
		for ctx.Err() == nil {
			start := time.Now()
			if err := cycle(d); err != nil {
				failures = append(failures, err.Error())
				if errors.Is(err, errFatal) {
					return cycles, failures
				}
				sleepCtx(ctx, 200*time.Millisecond)
				continue
			}
			cycles++
			sleepCtx(ctx, gap-time.Since(start))
		}
		return cycles, failures
	}
}

// restartCost measures smoothserve alone, with the base workload, in steady
// state, during a continuous `smoothtool restart` loop and during a
// continuous `smoothtool upgrade` loop. It is a smoothserve of its own: its
// instances move to other ports at every restart, which the other proxies
// could not follow.
func (b *bench) restartCost(ctx context.Context) (*table, error) {
	d, err := startDaemon(b.bin, filepath.Join(b.dir, "smoothserve-restarts"), daemonOptions{})
	if err != nil {
		return nil, err
	}
	b.stops = append(b.stops, d.stop)
	if err := waitServing(d.url(), 15*time.Second, nil); err != nil {
		return nil, fmt.Errorf("smoothserve on %s: %w", d.url(), err)
	}
	w := workloads[0]
	t := &table{
		title:   "Restart cost: smoothserve alone, " + w.title,
		command: fmt.Sprintf("wrk -t%d -c%d -d%s --latency http://127.0.0.1:PORT%s", wrkThreads, w.conns, b.duration, w.path),
		base:    restartModes[0].name,
		cycles:  true,
		probe:   true,
		after:   restartTargets,
	}
	for _, m := range restartModes {
		t.row(m.name)
	}
	for r := range b.rounds {
		for i := range restartModes {
			m := restartModes[(r+i)%len(restartModes)]
			s := t.row(m.name)
			run, err := b.measureDuring(ctx, d, w, m)
			if err != nil {
				return t, fmt.Errorf("smoothserve, %s: %w", m.name, err)
			}
			s.add(run.wrk, run.peak)
			s.cycles += run.cycles
			s.addProbe(run.probe)
			for _, f := range run.failures {
				s.note(f)
			}
			t.addCPU(m.name, run.cpu)
			progress("restart cost", r, b.rounds, fmt.Sprintf("%s (%d cycles)", m.name, run.cycles), run.wrk)
			// The next run starts with every instance ready.
			if _, err := d.waitReady(time.Minute, nil); err != nil {
				return t, fmt.Errorf("smoothserve after the %s: %w\n%s", m.name, err, tail(filepath.Join(d.dir, "logs", benchService+".log"), 15))
			}
		}
	}
	// Not fatal: the table stands without it.
	var err2 error
	if t.quiet, err2 = b.quietCycles(ctx, d); err2 != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err2)
	}
	for _, q := range t.quiet {
		fmt.Fprintf(os.Stderr, "bench: restart cost, %d %ss without load: smoothserve %.1f ms, smoothtool %.1f ms each\n", q.cycles, q.name, ms(q.daemons), ms(q.tool))
	}
	d.stop()
	return t, nil
}

// duringRun is what one restart-cost run measured.
type duringRun struct {
	wrk      wrkResult
	peak     int64 // KiB
	cycles   int
	failures []string
	probe    probeResult
	cpu      cpuCount // empty without perf
}

// measureDuring is measure with m's loop and a probe (and perf, if b.perf)
// running during the measured run (not the warm-up).
func (b *bench) measureDuring(ctx context.Context, d *daemon, w workload, m restartMode) (run duringRun, err error) {
	if b.warmup > 0 {
		if _, err := runWrk(ctx, d.url(), w, b.warmup); err != nil {
			return run, fmt.Errorf("warm-up: %w", err)
		}
	}
	resetHWM(d.pids())
	running, stop := context.WithCancel(ctx)
	defer stop()
	peakc := samplePeak(running, d.pids)
	probec := probe(running, d.url())
	type loopResult struct {
		cycles   int
		failures []string
	}
	loopc := make(chan loopResult, 1)
	if m.loop != nil {
		go func() {
			c, f := m.loop(d, running)
			loopc <- loopResult{c, f}
		}()
	} else {
		loopc <- loopResult{}
	}
	var count func() cpuCount
	run.wrk, count, err = b.runWrkCounted(ctx, d.url(), w)
	stop()
	run.probe = <-probec
	lr := <-loopc
	run.cycles, run.failures = lr.cycles, lr.failures
	if len(lr.failures) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %s: %d failed: %s\n", m.name, len(lr.failures), lr.failures[0])
	}
	if run.probe.failed > 0 {
		fmt.Fprintf(os.Stderr, "bench: %s: %d of %d probe requests failed: %s\n", m.name, run.probe.failed, run.probe.requests, run.probe.firstFailure)
	}
	run.peak = <-peakc
	run.cpu = count()
	return run, err
}
