package procstat

import (
	"context"
	"sync"
	"time"
)

// Use is the CPU and memory of one process group, as Sampler.Measure
// gives it.
type Use struct {
	CPUPercent float64 // of one CPU, since the sample before: above 100 with several busy threads or processes
	RSS        int64   // resident bytes, summed over the group's processes
}

const (
	// minSampleGap is the shortest time CPU is measured over: a first
	// Measure waits it; one closer than it to the last sample gets that
	// sample's figures.
	minSampleGap = 200 * time.Millisecond
	// maxSampleAge is the longest: an older sample is taken afresh, so that
	// the figure is of the last few seconds, not since the last Measure.
	maxSampleAge = 10 * time.Second
)

// Sampler measures process groups between one Measure and the next, so
// that a status asked every 2 s shows the CPU of the last 2 s at no wait.
// Its methods may be called concurrently: callers share a sample.
//
// Ownership: read is set at creation; mu guards the rest, and is held
// across a sample.
type Sampler struct {
	read func(pgids ...int) (map[int]Usage, error)

	mu   sync.Mutex
	at   time.Time
	last map[int]Usage
	use  map[int]Use
}

// NewSampler returns a Sampler that has not sampled yet: its first Measure
// waits minSampleGap (200 ms).
func NewSampler() *Sampler { return &Sampler{read: Groups} }

// Measure is the usage of each of pids' process groups (pids are process
// group leaders: the supervisor starts each instance as the leader of its
// own). CPU is measured since the sample before, taken at least 200 ms and
// at most 10 s ago; without one (the first call, or the last is older),
// Measure samples twice, 200 ms apart, or less if ctx is done first (then
// it returns nothing). A group that cannot be read, or has no process, has
// no entry; nil when /proc cannot be read. The map returned may be shared
// with other callers: it must not be modified.
func (s *Sampler) Measure(ctx context.Context, pids []int) map[int]Use {
	if len(pids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.at) < minSampleGap && s.last != nil {
		return s.use
	}
	if s.last == nil || time.Since(s.at) > maxSampleAge {
		if !s.sample(pids) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(minSampleGap):
		}
	}
	before, since := s.last, s.at
	if !s.sample(pids) {
		return nil
	}
	elapsed := s.at.Sub(since).Seconds()
	s.use = make(map[int]Use, len(pids))
	for _, pid := range pids {
		now, then := s.last[pid], before[pid]
		if now.Procs == 0 || then.Procs == 0 {
			continue
		}
		s.use[pid] = Use{CPUPercent: 100 * now.CPUSince(then).Seconds() / elapsed, RSS: now.RSS}
	}
	return s.use
}

// sample reads the groups of pids into last.
func (s *Sampler) sample(pids []int) bool {
	use, err := s.read(pids...)
	if err != nil {
		s.last = nil
		return false
	}
	s.last, s.at = use, time.Now()
	return true
}
