package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A workload is one wrk (or h2load) command line: the same for every proxy.
type workload struct {
	title string // heading of its table
	conns int    // keep-alive connections
	path  string
	// header is one more request header (wrk -H), "" for none.
	header string
	// tls: against the proxy's HTTPS port (https://localhost:PORT).
	tls bool
	// streams > 0: HTTP/2 with h2load, this many streams at once on each
	// connection (h2load -m); 0: wrk, HTTP/1.1.
	streams int
	// timeout is wrk's --timeout, 0 for its default (2 s). wrk counts a
	// response later than that as a timeout error and leaves it out of
	// the latencies, which would cap p99 at the timeout.
	timeout time.Duration
}

// command is the workload's command line for d, for the reader.
func (w workload) command(d time.Duration) string {
	if w.streams > 0 {
		return fmt.Sprintf("h2load -t%d -c%d -m%d -D%d --log-file=FILE %s%s",
			wrkThreads, w.conns, w.streams, int(d/time.Second), w.urlPattern(), w.path)
	}
	h := ""
	if w.timeout > 0 {
		h = " --timeout " + w.timeout.String()
	}
	if w.header != "" {
		h += fmt.Sprintf(" -H '%s'", w.header)
	}
	return fmt.Sprintf("wrk -t%d -c%d -d%s --latency%s %s%s", wrkThreads, w.conns, d, h, w.urlPattern(), w.path)
}

func (w workload) urlPattern() string {
	if w.tls {
		return "https://localhost:PORT"
	}
	return "http://127.0.0.1:PORT"
}

// wrkThreads is wrk's thread count in every run: the machine has 2 cores,
// shared by wrk, the proxy and the 3 demo instances.
const wrkThreads = 2

// wrkResult is what one wrk (or h2load) run measured.
type wrkResult struct {
	requests int64
	rps      float64
	p50, p99 time.Duration
	// Socket errors, as wrk counts them, and responses with status >= 400
	// (wrk's "Non-2xx or 3xx responses").
	connect, read, write, timeout, non2xx int64
}

func (r wrkResult) errors() int64 {
	return r.connect + r.read + r.write + r.timeout + r.non2xx
}

// runWrk runs wrk for d against url+w.path.
func runWrk(ctx context.Context, url string, w workload, d time.Duration) (wrkResult, error) {
	return runWrkUnder(ctx, nil, url, w, d)
}

// runWrkUnder is runWrk with wrk as the workload of prefix, a command that
// runs the words after it (perf record ... --), if any. A workload with
// streams runs h2load instead (h2load.go).
func runWrkUnder(ctx context.Context, prefix []string, url string, w workload, d time.Duration) (wrkResult, error) {
	if w.streams > 0 {
		return runH2loadUnder(ctx, prefix, url, w, d)
	}
	args := append(slices.Clone(prefix), "wrk",
		"-t"+strconv.Itoa(wrkThreads),
		"-c"+strconv.Itoa(w.conns),
		"-d"+strconv.Itoa(int(d.Round(time.Second)/time.Second))+"s",
		"--latency",
	)
	if w.timeout > 0 {
		args = append(args, "--timeout", strconv.Itoa(int(w.timeout/time.Second))+"s")
	}
	if w.header != "" {
		args = append(args, "-H", w.header)
	}
	args = append(args, url+w.path)
	out, err := runLoad(ctx, args, d+w.timeout)
	if err != nil {
		return wrkResult{}, err
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return r, nil
}

// runLoad runs args, a load of d seconds, and returns its output.
func runLoad(ctx context.Context, args []string, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	// Cancelled (an interrupted bench), the whole group goes: wrk is not left
	// loading the proxy when it runs under perf.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

var (
	wrkRequests  = regexp.MustCompile(`^\s*(\d+) requests in `)
	wrkRPS       = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)`)
	wrkPercent   = regexp.MustCompile(`^\s*(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	wrkSocketErr = regexp.MustCompile(`^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx    = regexp.MustCompile(`^\s*Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads the output of wrk --latency. The error lines appear only
// when there were errors.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, have50, have99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := wrkRequests.FindStringSubmatch(line); m != nil {
			r.requests, _ = strconv.ParseInt(m[1], 10, 64)
		} else if m := wrkRPS.FindStringSubmatch(line); m != nil {
			r.rps, _ = strconv.ParseFloat(m[1], 64)
			haveRPS = true
		} else if m := wrkPercent.FindStringSubmatch(line); m != nil {
			d, err := wrkDuration(m[2], m[3])
			if err != nil {
				return r, err
			}
			if m[1] == "50" {
				r.p50, have50 = d, true
			} else {
				r.p99, have99 = d, true
			}
		} else if m := wrkSocketErr.FindStringSubmatch(line); m != nil {
			r.connect, _ = strconv.ParseInt(m[1], 10, 64)
			r.read, _ = strconv.ParseInt(m[2], 10, 64)
			r.write, _ = strconv.ParseInt(m[3], 10, 64)
			r.timeout, _ = strconv.ParseInt(m[4], 10, 64)
		} else if m := wrkNon2xx.FindStringSubmatch(line); m != nil {
			r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	switch {
	case !haveRPS:
		return r, fmt.Errorf("no Requests/sec in wrk's output")
	case !have50 || !have99:
		return r, fmt.Errorf("no latency distribution in wrk's output (run with --latency)")
	}
	return r, nil
}

// wrkDuration converts wrk's "1.23ms" (units us, ms, s, m, h).
func wrkDuration(num, unit string) (time.Duration, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("latency %s%s: %w", num, unit, err)
	}
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	return time.Duration(math.Round(v * float64(scale))), nil
}
