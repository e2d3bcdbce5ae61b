package admin

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"smoothserve/control/api"
)

// pageView is what the page template renders: the status, made to read,
// and who reads it.
type pageView struct {
	Nonce    string // the page's Content-Security-Policy nonce
	ReadOnly bool   // no Users: no actions at all
	User     string // who loaded the page; "" anonymous
	Token    string // User's CSRF token

	Pid       int
	Uptime    string
	StartedAt string
	Now       string
	Host      string // the host's drain state: serving, draining, drained
	HostSince string // when the drain began; "" while serving
	Services  []serviceView
}

type serviceView struct {
	Name      string
	Hosts     string
	Port      int
	Ports     string // the instances'
	State     string
	Usage     bool // some instance has its CPU and memory: the table has their columns
	Instances []instanceView
	Rollout   *rolloutView
}

type instanceView struct {
	Slot     int
	Port     int
	Pid      string
	State    string
	Inflight int64
	Served   uint64
	Restarts int
	Uptime   string
	Error    string
	CPU      string // "12.3%"; "-" not measured
	Memory   string // "50.0 MiB"; "-" not measured
}

type rolloutView struct {
	Trigger  string
	When     string
	Ago      string
	Outcome  string
	Took     string
	Replaced int
	Error    string
}

// newPageView makes the status readable at now.
func newPageView(st api.Status, now time.Time) pageView {
	v := pageView{
		Pid:       st.Pid,
		Uptime:    since(st.StartedAt, now),
		StartedAt: st.StartedAt.Local().Format(time.DateTime),
		Now:       now.Local().Format(time.TimeOnly),
		Host:      st.Host.State,
	}
	if !st.Host.DrainSince.IsZero() {
		v.HostSince = st.Host.DrainSince.Local().Format(time.DateTime) + ", " + since(st.Host.DrainSince, now) + " ago"
	}
	for _, s := range st.Services {
		v.Services = append(v.Services, newServiceView(s, now))
	}
	return v
}

// newServiceView makes a service readable.
func newServiceView(s api.ServiceStatus, now time.Time) serviceView {
	sv := serviceView{
		Name:  s.Name,
		Hosts: strings.Join(s.Hosts, ", "),
		Port:  s.Port,
		State: s.State,
	}
	var ports []string
	for _, in := range s.Instances {
		ports = append(ports, strconv.Itoa(in.Port))
		iv := instanceView{
			Slot: in.Slot, Port: in.Port, Pid: "-", State: in.State.String(),
			Inflight: in.Inflight, Served: in.Served, Restarts: in.Restarts,
			Uptime: "-", Error: redactPaths(in.Error), CPU: "-", Memory: "-",
		}
		if in.Pid != 0 {
			iv.Pid = strconv.Itoa(in.Pid)
		}
		if !in.StartedAt.IsZero() {
			iv.Uptime = since(in.StartedAt, now)
		}
		if in.RSSBytes > 0 { // measured: a process has memory
			sv.Usage = true
			iv.CPU = strconv.FormatFloat(in.CPUPercent, 'f', 1, 64) + "%"
			iv.Memory = fmtBytes(in.RSSBytes)
		}
		sv.Instances = append(sv.Instances, iv)
	}
	sv.Ports = strings.Join(ports, ", ")
	if sv.Ports == "" {
		sv.Ports = "-"
	}
	if ro := s.LastRollout; ro != nil {
		sv.Rollout = newRolloutView(ro, now)
	}
	return sv
}

func newRolloutView(ro *api.Rollout, now time.Time) *rolloutView {
	rv := &rolloutView{
		Trigger:  redactPaths(ro.Trigger),
		When:     ro.StartedAt.Local().Format(time.DateTime),
		Ago:      since(ro.StartedAt, now),
		Outcome:  ro.Outcome,
		Replaced: len(ro.Instances),
		Error:    redactPaths(ro.Error),
	}
	if !ro.FinishedAt.IsZero() {
		rv.Took = fmtDuration(ro.FinishedAt.Sub(ro.StartedAt))
	}
	return rv
}

// fmtBytes writes n bytes to a person: 512 B, 50.0 MiB.
func fmtBytes(n int64) string {
	b := float64(n)
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// since is how long ago t was, as fmtDuration writes it.
func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmtDuration(now.Sub(t))
}

// fmtDuration writes d to a person: 850ms, 2.1s, 3m05s, 2h07m, 3d04h.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return api.Age(d)
}

// absPath is an absolute path of two elements or more, where a word
// starts: not in a URL (after "http:" there is a slash, not a start).
var absPath = regexp.MustCompile(`(^|[\s"'=(\[{,;])(/[^\s"'()\[\]{},;:]+)`)

// redactPaths shortens every absolute path in s to its last element, so
// that the page shows no executable path (a trigger is the changed file, an
// error may name the binary).
func redactPaths(s string) string {
	return absPath.ReplaceAllStringFunc(s, func(m string) string {
		sub := absPath.FindStringSubmatch(m)
		lead, p := sub[1], sub[2]
		if strings.Count(strings.TrimSuffix(p, "/"), "/") < 2 {
			return m // "/health", "/": a route more likely than a file
		}
		file := strings.TrimRight(p, ".") // a sentence's full stop stays
		return lead + "…/" + path.Base(file) + p[len(file):]
	})
}
