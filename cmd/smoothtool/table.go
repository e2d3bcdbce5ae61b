package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"smoothserve/control/api"
)

// writeStatus prints st as tables, one per service. now is the time ages
// are counted to; times are shown in its location. With usage (status, not
// after other commands) the tables have CPU and MEM columns, the daemon's
// figures, "-" for an instance it did not measure.
func writeStatus(w io.Writer, st *api.Status, now time.Time, usage bool) {
	fmt.Fprintf(w, "smoothserve pid %d, up %s, config %s\n", st.Pid, age(now.Sub(st.StartedAt)), st.Config)
	if h := st.Host; h.State != "" && h.State != api.HostServing {
		fmt.Fprintf(w, "host %s since %s (%s ago): /health answers 503; smoothtool undrain puts it back\n",
			h.State, h.DrainSince.In(now.Location()).Format(time.DateTime), age(now.Sub(h.DrainSince)))
	} else if h.State == api.HostServing {
		fmt.Fprintf(w, "host serving\n")
	}
	for _, s := range st.Services {
		hosts := "any host (the default service of its port)"
		if len(s.Hosts) > 0 {
			hosts = "hosts " + strings.Join(s.Hosts, ", ")
		}
		fmt.Fprintf(w, "\n%s  %s  port %d  %s\n", s.Name, s.State, s.Port, hosts)
		if len(s.Instances) > 0 {
			writeInstances(w, s.Instances, now, usage)
		}
		if r := s.LastRollout; r != nil {
			fmt.Fprintf(w, "  last rollout: %s, %s (%s ago): %s\n",
				r.Trigger, r.StartedAt.In(now.Location()).Format(time.DateTime), age(now.Sub(r.StartedAt)), outcome(r, now))
		}
	}
}

// writeInstances prints the table of a service's instances, and why any
// failed.
func writeInstances(w io.Writer, instances []api.InstanceStatus, now time.Time, usage bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "  SLOT\tPORT\tPID\tSTATE\tINFLIGHT\tSERVED\tRESTARTS\tUPTIME"
	if usage {
		header += "\tCPU\tMEM"
	}
	fmt.Fprintln(tw, header)
	for _, in := range instances {
		uptime := "-"
		if !in.StartedAt.IsZero() {
			uptime = age(now.Sub(in.StartedAt))
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%d\t%d\t%d\t%s",
			in.Slot, in.Port, pidText(in.Pid), in.State, in.Inflight, in.Served, in.Restarts, uptime)
		if usage {
			fmt.Fprintf(tw, "\t%s\t%s", cpuText(in), memText(in))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, in := range instances {
		if in.Error != "" {
			fmt.Fprintf(w, "  slot %d: %s\n", in.Slot, in.Error)
		}
	}
}

// outcome says how a rollout ended, or how long it has been running.
func outcome(r *api.Rollout, now time.Time) string {
	if r.Outcome == api.RolloutRunning || r.FinishedAt.IsZero() {
		return fmt.Sprintf("%s for %s", r.Outcome, age(now.Sub(r.StartedAt)))
	}
	s := fmt.Sprintf("%s in %s, %d replaced", r.Outcome, r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond), len(r.Instances))
	if r.Error != "" {
		s += ": " + r.Error
	}
	return s
}

// writeRollouts prints one line per instance a rollout replaced:
//
//	web#0  pid 1234 → 5678  :8089  ready in 210ms
func writeRollouts(w io.Writer, rollouts []*api.Rollout) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rollouts {
		for _, in := range r.Instances {
			fmt.Fprintf(tw, "%s#%d\tpid %s → %d\t:%d\tready in %s\n",
				r.Service, in.Slot, pidText(in.OldPid), in.NewPid, in.Port, time.Duration(in.ReadyMS)*time.Millisecond)
		}
	}
	tw.Flush()
}

func pidText(pid int) string {
	if pid == 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

// age is api.Age.
func age(d time.Duration) string { return api.Age(d) }
