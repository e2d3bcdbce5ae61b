package main

import (
	"fmt"

	"smoothserve/control/api"
)

// The CPU and memory of an instance are the daemon's figures (it measures
// each instance's process group when its status is asked); an instance
// without them (no process, or not measured) shows "-".

// cpuText is in's CPU, in percent of one CPU: above 100 with several busy
// threads or workers.
func cpuText(in api.InstanceStatus) string {
	if in.RSSBytes <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", in.CPUPercent)
}

// memText is in's resident memory, summed over its process group.
func memText(in api.InstanceStatus) string {
	if in.RSSBytes <= 0 {
		return "-"
	}
	return bytesText(in.RSSBytes)
}

// bytesText is n bytes as a person reads them: 512 B, 12.3 MiB.
func bytesText(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / 1024
	for _, unit := range []string{"KiB", "MiB", "GiB"} {
		if v < 1023.95 { // not "1024.0 KiB"
			return fmt.Sprintf("%.1f %s", v, unit)
		}
		v /= 1024
	}
	return fmt.Sprintf("%.1f TiB", v)
}
