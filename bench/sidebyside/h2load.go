package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HTTP/2 load: h2load (nghttp2-client) in place of wrk, which speaks
// HTTP/1.1 only. It gives no percentiles, so each measured run writes one
// line per request (--log-file) and p50 and p99 are read from that: a few
// MB for a run, a cost to h2load's CPU that every proxy's run pays alike.

// runH2loadUnder runs h2load for d against url+w.path, under prefix (perf
// record ... --) if any.
func runH2loadUnder(ctx context.Context, prefix []string, url string, w workload, d time.Duration) (wrkResult, error) {
	f, err := os.CreateTemp("", "smoothserve-bench-h2load-")
	if err != nil {
		return wrkResult{}, err
	}
	f.Close()
	defer os.Remove(f.Name())
	args := append(slices.Clone(prefix), "h2load",
		"-t"+strconv.Itoa(wrkThreads),
		"-c"+strconv.Itoa(w.conns),
		"-m"+strconv.Itoa(w.streams),
		"-D"+strconv.Itoa(int(d.Round(time.Second)/time.Second)),
		"--log-file="+f.Name(),
	)
	if w.header != "" {
		args = append(args, "-H", w.header)
	}
	args = append(args, url+w.path)
	out, err := runLoad(ctx, args, d)
	if err != nil {
		return wrkResult{}, err
	}
	r, err := parseH2load(string(out))
	if err == nil {
		r.p50, r.p99, err = h2loadPercentiles(f.Name())
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return r, nil
}

var (
	h2Finished = regexp.MustCompile(`^finished in [0-9.]+\S*, ([0-9.]+) req/s`)
	h2Requests = regexp.MustCompile(`^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Statuses = regexp.MustCompile(`^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2Protocol = regexp.MustCompile(`^Application protocol: (\S+)`)
)

// parseH2load reads h2load's summary into a wrkResult: requests are the
// ones done, and the errors are its failed requests, as responses ≥ 400
// (non2xx) and the rest (stream errors, timeouts: read). h2load counts no
// connection errors: a connection it could not open shows only as less
// throughput.
func parseH2load(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveRequests bool
	var failed, s4xx, s5xx int64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := h2Finished.FindStringSubmatch(line); m != nil {
			r.rps, _ = strconv.ParseFloat(m[1], 64)
			haveRPS = true
		} else if m := h2Requests.FindStringSubmatch(line); m != nil {
			r.requests, _ = strconv.ParseInt(m[3], 10, 64)
			failed, _ = strconv.ParseInt(m[5], 10, 64)
			r.timeout, _ = strconv.ParseInt(m[7], 10, 64)
			haveRequests = true
		} else if m := h2Statuses.FindStringSubmatch(line); m != nil {
			s4xx, _ = strconv.ParseInt(m[3], 10, 64)
			s5xx, _ = strconv.ParseInt(m[4], 10, 64)
		} else if m := h2Protocol.FindStringSubmatch(line); m != nil && m[1] != "h2" {
			return r, fmt.Errorf("h2load negotiated %s, not h2", m[1])
		}
	}
	if !haveRPS || !haveRequests {
		return r, fmt.Errorf("no summary in h2load's output")
	}
	if r.requests == 0 {
		return r, fmt.Errorf("h2load: no request done (no connection?)")
	}
	r.non2xx = s4xx + s5xx
	r.read = max(failed-r.non2xx-r.timeout, 0)
	return r, nil
}

// h2loadPercentiles reads p50 and p99 of the time to the end of each
// response from an h2load --log-file (start µs, status, µs), failed
// streams (status -1) left out.
func h2loadPercentiles(file string) (p50, p99 time.Duration, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var us []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[1] == "-1" {
			continue
		}
		v, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("h2load log %s: line %q: %w", file, sc.Text(), err)
		}
		us = append(us, v)
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if len(us) == 0 {
		return 0, 0, fmt.Errorf("h2load log %s: no request", file)
	}
	slices.Sort(us)
	pct := func(p float64) time.Duration {
		i := min(int(p*float64(len(us))), len(us)-1)
		return time.Duration(us[i]) * time.Microsecond
	}
	return pct(0.50), pct(0.99), nil
}
