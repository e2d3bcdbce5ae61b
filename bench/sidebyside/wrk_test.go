package main

import (
	"testing"
	"time"
)

const wrkWithErrors = `Running 10s test @ http://127.0.0.1:20001/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.51ms    3.02ms  61.20ms   91.12%
    Req/Sec    14.01k     1.20k   17.50k    70.00%
  Latency Distribution
     50%    1.52ms
     75%    2.80ms
     90%    5.01ms
     99%   15.30ms
  278812 requests in 10.01s, 45.23MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:  27853.15
Transfer/sec:      4.52MB
`

const wrkClean = `Running 5s test @ http://127.0.0.1:20001/size?bytes=65536
  2 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   850.12us  200.00us   1.20s    80.00%
    Req/Sec     3.01k   100.00     3.50k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.00ms
     90%    1.10ms
     99%    1.02s
  30000 requests in 5.00s, 1.84GB read
Requests/sec:   6000.50
Transfer/sec:    368.00MB
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want wrkResult
	}{
		{"errors", wrkWithErrors, wrkResult{
			requests: 278812, rps: 27853.15,
			p50: 1520 * time.Microsecond, p99: 15300 * time.Microsecond,
			connect: 1, read: 2, write: 3, timeout: 4, non2xx: 5,
		}},
		{"clean", wrkClean, wrkResult{
			requests: 30000, rps: 6000.50,
			p50: 812 * time.Microsecond, p99: 1020 * time.Millisecond,
		}},
	}
	for _, tt := range tests {
		got, err := parseWrk(tt.out)
		if err != nil {
			t.Fatalf("%s: parseWrk: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: parseWrk = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestParseWrkWithoutLatency(t *testing.T) {
	if _, err := parseWrk("Requests/sec:  1.00\n"); err == nil {
		t.Error("parseWrk of output without --latency: no error, want one")
	}
}

// The plain tables' command lines are what they were before the HTTPS rows.
func TestWorkloadCommand(t *testing.T) {
	for _, tt := range []struct {
		w    workload
		want string
	}{
		{workloads[1], "wrk -t2 -c100 -d10s --latency http://127.0.0.1:PORT/size?bytes=1024"},
		{tlsWorkloads[0], "wrk -t2 -c64 -d10s --latency https://localhost:PORT/"},
		{tlsWorkloads[1], "h2load -t2 -c64 -m10 -D10 --log-file=FILE https://localhost:PORT/"},
		{compressWorkload, "wrk -t2 -c64 -d10s --latency -H 'Accept-Encoding: gzip' http://127.0.0.1:PORT/ws.html"},
		{accessLogWorkload, "wrk -t2 -c64 -d10s --latency http://127.0.0.1:PORT/"},
		{connWorkloads[1], "wrk -t2 -c5000 -d10s --latency --timeout 10s http://127.0.0.1:PORT/"},
	} {
		if got := tt.w.command(10 * time.Second); got != tt.want {
			t.Errorf("%s: command %q, want %q", tt.w.title, got, tt.want)
		}
	}
}

func TestParseOnly(t *testing.T) {
	for v, want := range map[string]int{"": 7, "sidebyside": 2, "restarts": 1, "https,compress": 2, "accesslog": 1, "connections,handshakes": 2} {
		got, err := parseOnly(v)
		if err != nil || len(got) != want {
			t.Errorf("parseOnly(%q) = %v, %v; want %d parts", v, got, err, want)
		}
	}
	if _, err := parseOnly("plain,tls"); err == nil {
		t.Error("parseOnly(plain,tls): no error")
	}
}
