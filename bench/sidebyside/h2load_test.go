package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// h2load 1.52's summary of a run with failures.
const h2loadOut = `starting benchmark...
spawning thread #0: 2 total client(s). Timing-based test with 0s of warm-up time and 2s of main duration for measurements.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2

finished in 2.00s, 9578.00 req/s, 439.92KB/s
requests: 19156 total, 19196 started, 19156 done, 9579 succeeded, 9580 failed, 2 errored, 1 timeout
status codes: 9579 2xx, 0 3xx, 7 4xx, 9570 5xx
traffic: 879.84KB (900956) total, 75.20KB (77004) headers (space savings 95.81%), 467.68KB (478900) data
                     min         max         mean         sd        +/- sd
time for request:      174us     92.33ms      3.92ms      5.74ms    94.53%
`

func TestParseH2load(t *testing.T) {
	got, err := parseH2load(h2loadOut)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{requests: 19156, rps: 9578, non2xx: 9577, timeout: 1, read: 2}
	if got != want {
		t.Errorf("parseH2load = %+v, want %+v", got, want)
	}
	if _, err := parseH2load("starting benchmark...\n"); err == nil {
		t.Error("output without a summary: no error")
	}
	if _, err := parseH2load("Application protocol: http/1.1\n"); err == nil {
		t.Error("http/1.1 negotiated: no error")
	}
}

func TestH2loadPercentiles(t *testing.T) {
	file := filepath.Join(t.TempDir(), "log")
	log := ""
	for i := 100; i >= 1; i-- { // 1..100 ms, out of order, and a failed stream
		log += "1796313517445247\t200\t" + strconv.Itoa(i*1000) + "\n"
	}
	log += "1796313517445249\t-1\t999999999\n"
	if err := os.WriteFile(file, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	p50, p99, err := h2loadPercentiles(file)
	if err != nil {
		t.Fatal(err)
	}
	if p50 != 51*time.Millisecond || p99 != 100*time.Millisecond {
		t.Errorf("p50 %v, p99 %v; want 51ms, 100ms", p50, p99)
	}
}
