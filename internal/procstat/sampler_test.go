package procstat

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestSamplerMeasuresAGroup(t *testing.T) {
	s := NewSampler()
	pgid := syscall.Getpgrp()
	stop := make(chan struct{})
	go func() { // something to measure
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	defer close(stop)
	began := time.Now()
	use := s.Measure(context.Background(), []int{pgid, 1 << 30})
	if waited := time.Since(began); waited < minSampleGap {
		t.Errorf("the first Measure took %v, want at least %v", waited, minSampleGap)
	}
	u, ok := use[pgid]
	if !ok || u.RSS <= 0 || u.CPUPercent <= 0 {
		t.Errorf("usage of this test's group %d: %+v (found %v), want CPU and memory", pgid, u, ok)
	}
	if _, ok := use[1<<30]; ok {
		t.Errorf("a group with no process has usage %+v", use[1<<30])
	}
}

func TestSamplerReusesARecentSample(t *testing.T) {
	var reads atomic.Int32
	s := &Sampler{read: func(pgids ...int) (map[int]Usage, error) {
		reads.Add(1)
		return map[int]Usage{7: {Procs: 2, RSS: 4096}}, nil
	}}
	ctx := context.Background()
	if use := s.Measure(ctx, []int{7}); use[7].RSS != 4096 {
		t.Fatalf("Measure: %v", use)
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("the first Measure read %d times, want 2 (minSampleGap apart)", n)
	}
	s.Measure(ctx, []int{7})
	if n := reads.Load(); n != 2 {
		t.Errorf("a Measure right after read again (%d reads)", n)
	}
	s.mu.Lock()
	s.at = s.at.Add(-time.Second)
	s.mu.Unlock()
	began := time.Now()
	s.Measure(ctx, []int{7})
	if n := reads.Load(); n != 3 || time.Since(began) >= minSampleGap {
		t.Errorf("a Measure a second later: %d reads in %v, want one more, at once", n, time.Since(began))
	}
	if use := s.Measure(ctx, nil); use != nil {
		t.Errorf("no pids: %v", use)
	}

	failing := &Sampler{read: func(...int) (map[int]Usage, error) { return nil, errors.New("no /proc") }}
	if use := failing.Measure(ctx, []int{7}); use != nil {
		t.Errorf("unreadable /proc: %v, want none", use)
	}
}

func TestSamplerGivesUpWhenCancelled(t *testing.T) {
	s := &Sampler{read: func(...int) (map[int]Usage, error) { return map[int]Usage{7: {Procs: 1}}, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if use := s.Measure(ctx, []int{7}); use != nil {
		t.Errorf("Measure with a done context: %v, want none", use)
	}
}
