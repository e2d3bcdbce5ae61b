package promtext

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"smoothserve/internal/procstat"
)

// The families of client_golang's Go collector (collectors.NewGoCollector
// with its defaults) and process collector, same names, kinds and labels,
// the help said in our words.
var (
	goGCDuration = NewDesc("go_gc_duration_seconds", "Wall time of the garbage collector's stop-the-world pauses.", Summary)
	goGOGC       = NewDesc("go_gc_gogc_percent", "The heap growth, in percent, that triggers a collection (GOGC; -1: off).", Gauge)
	goMemLimit   = NewDesc("go_gc_gomemlimit_bytes", "The Go runtime's soft memory limit (GOMEMLIMIT; math.MaxInt64 when none).", Gauge)
	goGoroutines = NewDesc("go_goroutines", "Goroutines that exist now.", Gauge)
	goInfo       = NewDesc("go_info", "The Go version the program was built with.", Gauge, "version")
	goMaxProcs   = NewDesc("go_sched_gomaxprocs_threads", "GOMAXPROCS: the threads that may run Go code at once.", Gauge)
	goThreads    = NewDesc("go_threads", "Operating system threads the runtime created.", Gauge)

	processCPU      = NewDesc("process_cpu_seconds_total", "User and system CPU time of the process, in seconds.", Counter)
	processMaxFDs   = NewDesc("process_max_fds", "The process's limit of open file descriptors (RLIMIT_NOFILE, soft).", Gauge)
	processNetIn    = NewDesc("process_network_receive_bytes_total", "Bytes received over IP in the process's network namespace.", Counter)
	processNetOut   = NewDesc("process_network_transmit_bytes_total", "Bytes sent over IP in the process's network namespace.", Counter)
	processOpenFDs  = NewDesc("process_open_fds", "File descriptors the process has open.", Gauge)
	processRSS      = NewDesc("process_resident_memory_bytes", "Resident memory of the process, in bytes.", Gauge)
	processStart    = NewDesc("process_start_time_seconds", "When the process started, in seconds since the Unix epoch.", Gauge)
	processVirtual  = NewDesc("process_virtual_memory_bytes", "Virtual memory of the process, in bytes.", Gauge)
	processVirtMax  = NewDesc("process_virtual_memory_max_bytes", "The process's limit of virtual memory (RLIMIT_AS, soft), in bytes.", Gauge)
	goMemStatsDescs = sync.OnceValue(memStatsDescs) // made at the first scrape
)

// A memStat is a go_memstats_ family and the MemStats field it reports.
type memStat struct {
	d     *Desc
	value func(*runtime.MemStats) float64
}

func memStatsDescs() []memStat {
	u := func(v uint64) float64 { return float64(v) }
	m := func(name, help string, kind Kind, value func(*runtime.MemStats) float64) memStat {
		return memStat{NewDesc("go_memstats_"+name, help, kind), value}
	}
	return []memStat{
		m("alloc_bytes", "Bytes of heap objects in use.", Gauge, func(s *runtime.MemStats) float64 { return u(s.Alloc) }),
		m("alloc_bytes_total", "Bytes of heap objects allocated, freed ones included.", Counter, func(s *runtime.MemStats) float64 { return u(s.TotalAlloc) }),
		m("buck_hash_sys_bytes", "Bytes of the profiling bucket hash table.", Gauge, func(s *runtime.MemStats) float64 { return u(s.BuckHashSys) }),
		m("frees_total", "Heap objects freed.", Counter, func(s *runtime.MemStats) float64 { return u(s.Frees) }),
		m("gc_sys_bytes", "Bytes of the garbage collector's metadata.", Gauge, func(s *runtime.MemStats) float64 { return u(s.GCSys) }),
		m("heap_alloc_bytes", "Bytes of heap objects in use (as go_memstats_alloc_bytes).", Gauge, func(s *runtime.MemStats) float64 { return u(s.HeapAlloc) }),
		m("heap_idle_bytes", "Bytes of heap spans with no object.", Gauge, func(s *runtime.MemStats) float64 { return u(s.HeapIdle) }),
		m("heap_inuse_bytes", "Bytes of heap spans with objects.", Gauge, func(s *runtime.MemStats) float64 { return u(s.HeapInuse) }),
		m("heap_objects", "Heap objects in use.", Gauge, func(s *runtime.MemStats) float64 { return u(s.HeapObjects) }),
		m("heap_released_bytes", "Bytes of heap given back to the operating system.", Gauge, func(s *runtime.MemStats) float64 { return u(s.HeapReleased) }),
		m("heap_sys_bytes", "Bytes of heap obtained from the operating system.", Gauge, func(s *runtime.MemStats) float64 { return u(s.HeapSys) }),
		m("last_gc_time_seconds", "When the last garbage collection ended, in seconds since the Unix epoch.", Gauge, func(s *runtime.MemStats) float64 { return float64(s.LastGC) / 1e9 }),
		m("mallocs_total", "Heap objects allocated, freed ones included.", Counter, func(s *runtime.MemStats) float64 { return u(s.Mallocs) }),
		m("mcache_inuse_bytes", "Bytes of mcache structures in use.", Gauge, func(s *runtime.MemStats) float64 { return u(s.MCacheInuse) }),
		m("mcache_sys_bytes", "Bytes of mcache structures obtained from the operating system.", Gauge, func(s *runtime.MemStats) float64 { return u(s.MCacheSys) }),
		m("mspan_inuse_bytes", "Bytes of mspan structures in use.", Gauge, func(s *runtime.MemStats) float64 { return u(s.MSpanInuse) }),
		m("mspan_sys_bytes", "Bytes of mspan structures obtained from the operating system.", Gauge, func(s *runtime.MemStats) float64 { return u(s.MSpanSys) }),
		m("next_gc_bytes", "The heap size at which the next collection starts.", Gauge, func(s *runtime.MemStats) float64 { return u(s.NextGC) }),
		m("other_sys_bytes", "Bytes of other runtime allocations.", Gauge, func(s *runtime.MemStats) float64 { return u(s.OtherSys) }),
		m("stack_inuse_bytes", "Bytes of goroutine stacks in use.", Gauge, func(s *runtime.MemStats) float64 { return u(s.StackInuse) }),
		m("stack_sys_bytes", "Bytes of stacks obtained from the operating system.", Gauge, func(s *runtime.MemStats) float64 { return u(s.StackSys) }),
		m("sys_bytes", "Bytes obtained from the operating system in all.", Gauge, func(s *runtime.MemStats) float64 { return u(s.Sys) }),
	}
}

// AddGo adds the Go runtime's families: memory, garbage collection,
// goroutines and threads, GOGC, GOMEMLIMIT and GOMAXPROCS, the version.
func (s *Set) AddGo() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, m := range goMemStatsDescs() {
		s.Add(m.d, m.value(&ms))
	}
	gc := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&gc)
	q := make([]Quantile, len(gc.PauseQuantiles))
	for i, p := range gc.PauseQuantiles {
		q[i] = Quantile{Quantile: float64(i) / float64(len(q)-1), Value: p.Seconds()}
	}
	s.AddSummary(goGCDuration, uint64(gc.NumGC), gc.PauseTotal.Seconds(), q)
	rm := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}, {Name: "/sched/gomaxprocs:threads"}}
	metrics.Read(rm)
	for i, d := range []*Desc{goGOGC, goMemLimit, goMaxProcs} {
		if rm[i].Value.Kind() == metrics.KindUint64 { // KindBad: a runtime without it
			s.Add(d, float64(rm[i].Value.Uint64()))
		}
	}
	s.Add(goGoroutines, float64(runtime.NumGoroutine()))
	s.Add(goInfo, 1, runtime.Version())
	threads, _ := runtime.ThreadCreateProfile(nil)
	s.Add(goThreads, float64(threads))
}

// AddProcess adds this process's families, read from /proc and its
// limits. A family whose source cannot be read is left out, as
// client_golang leaves it out.
func (s *Set) AddProcess() {
	pid := os.Getpid()
	if st, err := procstat.Read(pid); err == nil {
		s.Add(processCPU, st.CPU().Seconds())
		if t, err := st.Started(); err == nil {
			s.Add(processStart, float64(t.UnixNano())/1e9)
		}
	}
	if virtual, rss, err := procstat.Memory(pid); err == nil {
		s.Add(processVirtual, float64(virtual))
		s.Add(processRSS, float64(rss))
	}
	if n, err := procstat.OpenFiles(pid); err == nil {
		s.Add(processOpenFDs, float64(n))
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		s.Add(processMaxFDs, float64(lim.Cur))
	}
	if unix.Getrlimit(unix.RLIMIT_AS, &lim) == nil {
		s.Add(processVirtMax, float64(lim.Cur))
	}
	if in, out, err := procstat.NetOctets(pid); err == nil {
		s.Add(processNetIn, float64(in))
		s.Add(processNetOut, float64(out))
	}
}
