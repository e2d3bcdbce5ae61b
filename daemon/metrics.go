package daemon

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"smoothserve/control/api"
	"smoothserve/internal/procstat"
	"smoothserve/internal/promtext"
	"smoothserve/proxy"
	"smoothserve/supervisor"
)

// The daemon's metrics, read when scraped (GET /metrics on AdminAddr):
// the proxy's counters (summed from its shards), the rotation, the
// supervisor's status and its slots' counts (restarts), and the
// instances' CPU and memory from /proc.
// Nothing is counted on the request path here.

var (
	descRequests   = promtext.NewDesc("smoothserve_http_requests_total", "Requests answered, by service, status code and method.", promtext.Counter, "service", "code", "method")
	descDuration   = promtext.NewDesc("smoothserve_http_request_duration_seconds", "Time from a request's first byte to its answer's last.", promtext.Histogram, "service")
	descInflight   = promtext.NewDesc("smoothserve_http_requests_in_flight", "Requests sent to the service's instances and not yet answered.", promtext.Gauge, "service")
	descUp         = promtext.NewDesc("smoothserve_upstream_up", "1 if the instance is in rotation.", promtext.Gauge, "service", "instance")
	descRestarts   = promtext.NewDesc("smoothserve_instance_restarts_total", "Processes started for a slot after its first.", promtext.Counter, "service", "instance", "reason")
	descCPU        = promtext.NewDesc("smoothserve_instance_cpu_seconds_total", "CPU time of the instance's process group.", promtext.Counter, "service", "instance")
	descRSS        = promtext.NewDesc("smoothserve_instance_resident_memory_bytes", "Resident memory of the instance's process group.", promtext.Gauge, "service", "instance")
	descRollouts   = promtext.NewDesc("smoothserve_rollouts_total", "Rolling restarts finished, by outcome.", promtext.Counter, "service", "result")
	descUpgrades   = promtext.NewDesc("smoothserve_upgrades_total", "Upgrades of smoothserve, by outcome (going on across upgrades).", promtext.Counter, "result")
	descOpenConns  = promtext.NewDesc("smoothserve_open_connections", "Client connections open, by proxy port (HTTP/1.x).", promtext.Gauge, "port")
	descParked     = promtext.NewDesc("smoothserve_parked_connections", "Client connections parked: idle HTTP/1.x ones (plain or TLS), quiet WebSocket tunnels and quiet HTTP/1.x streamed responses, watched in one epoll set, holding no goroutine or buffer.", promtext.Gauge)
	descShed       = promtext.NewDesc("smoothserve_connections_shed_total", "Idle keep-alive client connections closed, the longest idle first, to free file descriptors when this process had none left for a new connection or a connection to an instance (since it started).", promtext.Counter)
	descHost       = promtext.NewDesc("smoothserve_host_state", "1 for the host's drain state now (serving, draining, drained), 0 for the others.", promtext.Gauge, "state")
	descInstDrain  = promtext.NewDesc("smoothserve_instance_drained", "1 if the operator took the instance out of rotation (smoothtool drain NAME#SLOT).", promtext.Gauge, "service", "instance")
	descLogDropped = promtext.NewDesc("smoothserve_access_log_dropped_lines_total", "Access log lines dropped: the log's writer fell behind (its queue was full), or a write of the file failed.", promtext.Counter, "path")
)

// upgradeCounts are the upgrades by outcome: ok is the one that started
// this process (counted by it, once ready), failed the ones this process
// tried; the base, the previous processes'.
type upgradeCounts struct {
	ok, failed         atomic.Uint64
	baseOK, baseFailed atomic.Uint64 // the previous processes'
}

// collect adds the daemon's samples to s.
func (d *Daemon) collect(s *promtext.Set) {
	for _, st := range d.px.Stats() {
		collectService(s, st)
	}
	for name, set := range d.setsNow() {
		var inflight int64
		for _, b := range set.Backends() {
			inflight += b.Inflight()
		}
		s.Add(descInflight, float64(inflight), name)
	}
	for port, n := range d.px.OpenConnections() {
		s.Add(descOpenConns, float64(n), strconv.Itoa(port))
	}
	s.Add(descParked, float64(d.px.ParkedConnections()))
	s.Add(descShed, float64(d.px.ShedConnections()))
	host := d.host.Status().State
	for _, state := range []string{api.HostServing, api.HostDraining, api.HostDrained} {
		s.Add(descHost, b2f(state == host), state)
	}
	ok, failed := d.upgrades.total()
	s.Add(descUpgrades, float64(ok), "ok")
	s.Add(descUpgrades, float64(failed), "failed")
	status := d.sup.Status()
	for i := range status {
		collectInstances(s, &status[i])
	}
	collectRestarts(s, d.sup.Counts())
	for key, n := range d.rollouts.count(status) {
		s.Add(descRollouts, float64(n), key.service, key.result)
	}
	for path, n := range d.logs.dropped() { // paths made valid UTF-8: labels
		s.Add(descLogDropped, float64(n), path)
	}
}

// rolloutCounter counts the rollouts that finished, as the services'
// statuses show their last one: a service that finished two between two
// scrapes counts one.
type rolloutCounter struct {
	mu     sync.Mutex
	seen   map[string]time.Time // each service's last rollout counted (its start)
	counts map[rolloutKey]uint64
	base   map[rolloutKey]uint64 // the previous processes'
}

// total is every upgrade counted, the previous processes' included.
func (u *upgradeCounts) total() (ok, failed uint64) {
	return u.baseOK.Load() + u.ok.Load(), u.baseFailed.Load() + u.failed.Load()
}

type rolloutKey struct{ service, result string }

func (rc *rolloutCounter) count(status []api.ServiceStatus) map[rolloutKey]uint64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.counts == nil {
		rc.seen, rc.counts = map[string]time.Time{}, map[rolloutKey]uint64{}
	}
	for _, s := range status {
		r := s.LastRollout
		if r == nil || r.Outcome == api.RolloutRunning || !r.StartedAt.After(rc.seen[s.Name]) {
			continue
		}
		rc.seen[s.Name] = r.StartedAt
		rc.counts[rolloutKey{s.Name, r.Outcome}]++
	}
	out := make(map[rolloutKey]uint64, len(rc.counts)+len(rc.base))
	for k, v := range rc.base {
		out[k] = v
	}
	for k, v := range rc.counts {
		out[k] += v
	}
	return out
}

func collectService(s *promtext.Set, st proxy.ServiceStats) {
	for _, rc := range st.Requests {
		s.Add(descRequests, float64(rc.Count), st.Service, rc.Code, rc.Method)
	}
	buckets := make([]promtext.Bucket, len(proxy.DurationBuckets))
	for i, ub := range proxy.DurationBuckets {
		buckets[i] = promtext.Bucket{UpperBound: ub, Count: st.Buckets[i]}
	}
	count := st.Buckets[len(st.Buckets)-1]
	s.AddHistogram(descDuration, count, st.SumSeconds, buckets, st.Service)
}

// collectInstances adds one sample a slot of each instance family. A
// slot has two processes for a moment of each rollout (the old one and its
// replacement) and the status lists both: the slot is up while either is
// in rotation, and its CPU and memory are both's.
func collectInstances(s *promtext.Set, st *api.ServiceStatus) {
	type slotUse struct {
		up, drained, measured bool
		cpu                   float64
		rss                   int64
	}
	slots := map[int]*slotUse{}
	var order []int
	for _, in := range st.Instances {
		u := slots[in.Slot]
		if u == nil {
			u = &slotUse{}
			slots[in.Slot] = u
			order = append(order, in.Slot)
		}
		u.up = u.up || in.State == api.StateReady
		u.drained = u.drained || in.State == api.StateDrained
		if in.Pid <= 0 {
			continue
		}
		if g, err := procstat.Group(in.Pid); err == nil && g.Procs > 0 {
			u.measured = true
			u.cpu += g.CPU.Seconds()
			u.rss += g.RSS
		}
	}
	for _, slot := range order {
		u, inst := slots[slot], strconv.Itoa(slot)
		s.Add(descUp, b2f(u.up), st.Name, inst)
		s.Add(descInstDrain, b2f(u.drained), st.Name, inst)
		if u.measured {
			s.Add(descCPU, u.cpu, st.Name, inst)
			s.Add(descRSS, float64(u.rss), st.Name, inst)
		}
	}
}

// collectRestarts adds the restarts each slot counted, by reason: those
// of a stopped service and of a slot no longer configured too, so that no
// series goes back or away while the service exists.
func collectRestarts(s *promtext.Set, counts []supervisor.SlotCounts) {
	for _, c := range counts {
		for why, n := range c.Restarts {
			s.Add(descRestarts, float64(n), c.Service, strconv.Itoa(c.Slot), why)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves the daemon's metrics and the process's own (the
// go_ and process_ families), collected at each scrape: a process that an
// upgrade starts builds nothing for them before it is scraped but their
// descriptions.
func (d *Daemon) metricsHandler() http.Handler {
	return promtext.Handler(func(s *promtext.Set) {
		d.collect(s)
		s.AddGo()
		s.AddProcess()
	})
}

// counters are what a process hands to the one that replaces it, so that
// its metrics, and the status's RESTARTS and SERVED, go on from there
// (connpass.Counters). Restarts and Served are the supervisor's
// SlotCounts, flattened; Restarts is read and written as by earlier
// versions, so that an upgrade from one, or back to one, keeps them.
type counters struct {
	Proxy    []proxy.ServiceStats `json:"proxy"`
	Upgrades map[string]uint64    `json:"upgrades"`
	Rollouts []rolloutTotal       `json:"rollouts"`
	Restarts []restartTotal       `json:"restarts"`
	// Served is the requests each slot's instances answered (the
	// status's SERVED), by service and slot.
	Served []servedTotal `json:"served,omitempty"`
	// LogDropped is the access log lines dropped, by path.
	LogDropped map[string]uint64 `json:"access_log_dropped,omitempty"`
}

type restartTotal struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	Reason  string `json:"reason"`
	Count   uint64 `json:"count"`
}

type servedTotal struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	Count   uint64 `json:"count"`
}

type rolloutTotal struct {
	Service string `json:"service"`
	Result  string `json:"result"`
	Count   uint64 `json:"count"`
}

// snapshot is this process's counters, its predecessors' included.
func (d *Daemon) snapshot() counters {
	ok, failed := d.upgrades.total()
	c := counters{Proxy: d.px.Stats(), Upgrades: map[string]uint64{"ok": ok, "failed": failed}, LogDropped: d.logs.dropped()}
	for k, n := range d.rollouts.count(d.sup.Status()) {
		c.Rollouts = append(c.Rollouts, rolloutTotal{k.service, k.result, n})
	}
	for _, sc := range d.sup.Counts() {
		for why, n := range sc.Restarts {
			c.Restarts = append(c.Restarts, restartTotal{sc.Service, sc.Slot, why, n})
		}
		c.Served = append(c.Served, servedTotal{sc.Service, sc.Slot, sc.Served})
	}
	return c
}

// goOnFrom makes the previous process's counters the base of this one's.
// A later snapshot replaces an earlier (it includes it).
func (d *Daemon) goOnFrom(c counters) {
	d.px.SetBase(c.Proxy)
	d.upgrades.setBase(c.Upgrades["ok"], c.Upgrades["failed"])
	base := map[rolloutKey]uint64{}
	for _, r := range c.Rollouts {
		base[rolloutKey{r.Service, r.Result}] = r.Count
	}
	d.rollouts.setBase(base)
	d.sup.GoOnFrom(c.slotCounts())
	d.logs.setBase(c.LogDropped)
}

func (u *upgradeCounts) setBase(ok, failed uint64) {
	u.baseOK.Store(ok)
	u.baseFailed.Store(failed)
}

func (rc *rolloutCounter) setBase(base map[rolloutKey]uint64) {
	rc.mu.Lock()
	rc.base = base
	rc.mu.Unlock()
}

// slotCounts are the restarts and requests served of each slot, as the
// supervisor counts them (its Counts, which snapshot flattened). A
// smoothserve from before Served was passed sends none: the slots' SERVED
// start from 0 at the upgrade to this version, their restarts go on.
func (c *counters) slotCounts() []supervisor.SlotCounts {
	type key struct {
		service string
		slot    int
	}
	by := map[key]*supervisor.SlotCounts{}
	of := func(service string, slot int) *supervisor.SlotCounts {
		k := key{service, slot}
		if by[k] == nil {
			by[k] = &supervisor.SlotCounts{Service: service, Slot: slot, Restarts: map[string]uint64{}}
		}
		return by[k]
	}
	for _, r := range c.Restarts {
		of(r.Service, r.Slot).Restarts[r.Reason] += r.Count
	}
	for _, s := range c.Served {
		of(s.Service, s.Slot).Served += s.Count
	}
	out := make([]supervisor.SlotCounts, 0, len(by))
	for _, sc := range by {
		out = append(out, *sc)
	}
	return out
}
