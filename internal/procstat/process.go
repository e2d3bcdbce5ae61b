package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Started is when the process started: the boot time of /proc/stat
// (btime) plus its start time (field 22).
func (s Stat) Started() (time.Time, error) {
	boot, err := bootTime()
	if err != nil {
		return time.Time{}, err
	}
	return boot.Add(ticks(s.StartTime)), nil
}

var bootTime = sync.OnceValues(func() (time.Time, error) {
	b, err := readProc("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("malformed /proc/stat: btime: %w", err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("/proc/stat has no btime")
})

// OpenFiles is the number of file descriptors process pid has open: the
// entries of /proc/PID/fd, but the one reading them when pid is this
// process.
func OpenFiles(pid int) (int, error) {
	d, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	if pid == os.Getpid() {
		return len(names) - 1, nil
	}
	return len(names), nil
}

// NetOctets are the bytes received and sent over IP in process pid's
// network namespace (InOctets and OutOctets of /proc/PID/net/netstat's
// IpExt lines), what client_golang's process collector reports as the
// process's network bytes.
func NetOctets(pid int) (in, out uint64, err error) {
	b, err := readProc("/proc/" + strconv.Itoa(pid) + "/net/netstat")
	if err != nil {
		return 0, 0, err
	}
	return parseNetstat(pid, b)
}

// parseNetstat reads the IpExt lines of a netstat file: the first names
// the fields, the second gives their values.
func parseNetstat(pid int, b []byte) (in, out uint64, err error) {
	var names []string
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "IpExt:")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		values := strings.Fields(rest)
		if len(values) != len(names) {
			break
		}
		seen := 0
		for i, name := range names {
			var dst *uint64
			switch name {
			case "InOctets":
				dst = &in
			case "OutOctets":
				dst = &out
			default:
				continue
			}
			if *dst, err = strconv.ParseUint(values[i], 10, 64); err != nil {
				return 0, 0, fmt.Errorf("malformed /proc/%d/net/netstat: %s: %w", pid, name, err)
			}
			seen++
		}
		if seen == 2 {
			return in, out, nil
		}
		break
	}
	return 0, 0, fmt.Errorf("malformed /proc/%d/net/netstat: no IpExt InOctets and OutOctets", pid)
}
