package main

import (
	"maps"
	"strings"
	"testing"
)

// A `perf report --sort comm --stdio -n -q` as perf 6.1 prints it.
const perfComms = `    48.35%         21849  demo           
    33.56%         15165  smoothserve    
    12.70%          5741  wrk            
     2.49%          1123  swapper        
     1.97%           890  smoothtool     
     0.60%           270  sidebyside     
     0.20%            90  kworker/u8:2-ex
     0.13%            60  ksoftirqd/0    
`

func TestParsePerfComms(t *testing.T) {
	got, err := parsePerfComms(perfComms)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"instances": 21849, "proxy": 15165, "wrk": 5741, "idle": 1123, "smoothtool": 890, "bench": 270, "other": 150}
	if !maps.Equal(got, want) {
		t.Errorf("parsePerfComms = %v, want %v", got, want)
	}
	if _, err := parsePerfComms("Error:\nThe perf.data data has no samples!\n"); err == nil {
		t.Error("a report without samples: no error")
	}
}

// The restart-cost table: a loop that costs 10 µs more per request, 4 of
// them smoothserve's and smoothtool's, reads as 40% of the extra, and as
// the ratio the loop would have without them.
func TestCPUTableRestartCost(t *testing.T) {
	tb := &table{base: "steady state", cycles: true}
	tb.row("steady state")
	tb.row("restart loop").cycles = 400
	tb.row("/bin/true loop")
	tb.row("paced loop")
	// A sample is 1e6/perfHz µs: over a million requests, perfHz samples
	// are 1 µs per request.
	per := func(us int64) int64 { return us * perfHz }
	tb.addCPU("steady state", cpuCount{requests: 1e6, samples: map[string]int64{
		"instances": per(20), "proxy": per(14), "wrk": per(6),
	}})
	tb.addCPU("restart loop", cpuCount{requests: 1e6, samples: map[string]int64{
		"instances": per(26), "proxy": per(17), "smoothtool": per(1), "wrk": per(6),
	}})
	// A loop that is not smoothserve's takes CPU from smoothserve too: no
	// part of its extra is smoothserve's, rather than a negative one.
	tb.addCPU("/bin/true loop", cpuCount{requests: 1e6, samples: map[string]int64{
		"instances": per(19), "proxy": per(12), "wrk": per(6), "/bin/true": per(13),
	}})
	// An extra within 5% of steady state's cost is not split.
	tb.addCPU("paced loop", cpuCount{requests: 1e6, samples: map[string]int64{
		"instances": per(20), "proxy": per(15), "wrk": per(6), "idle": per(0),
	}})
	md := cpuTable(tb)
	for _, want := range []string{
		"| steady state | 1.00 | 20.0 | 14.0 | 0.0 | 6.0 | 0.0 | 0.0 | 0.0 | 0.0 | 40.0 | +0.0 | – | – | – |",
		"| paced loop | 0.98 | 20.0 | 15.0 | 0.0 | 6.0 | 0.0 | 0.0 | 0.0 | 0.0 | 41.0 | +1.0 | – | – | – |",
		"| /bin/true loop | 0.80 | 19.0 | 12.0 | 0.0 | 6.0 | 0.0 | 13.0 | 0.0 | 0.0 | 50.0 | +10.0 | – | – | – |",
		// 4 µs per request over a million requests in 400 restarts: 10 ms each.
		"| restart loop | 0.80 | 26.0 | 17.0 | 1.0 | 6.0 | 0.0 | 0.0 | 0.0 | 0.0 | 50.0 | +10.0 | 40% | 0.87 | 10.0 ms |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("cpuTable lacks\n%s\nin\n%s", want, md)
		}
	}
}

// A side-by-side table compares each proxy's own CPU per request with
// nginx's; what it has no column for (smoothtool here) counts in other.
func TestCPUTableSideBySide(t *testing.T) {
	tb := &table{base: "nginx"}
	tb.row("smoothserve")
	tb.row("nginx")
	per := func(us int64) int64 { return us * perfHz }
	tb.addCPU("nginx", cpuCount{requests: 1e6, samples: map[string]int64{"instances": per(20), "proxy": per(16), "wrk": per(4)}})
	// Two runs, pooled: 36 µs per request, 0.9 of nginx's time per request.
	tb.addCPU("smoothserve", cpuCount{requests: 1e6, samples: map[string]int64{"instances": per(18), "proxy": per(12), "wrk": per(4), "smoothtool": per(2)}})
	tb.addCPU("smoothserve", cpuCount{requests: 1e6, samples: map[string]int64{"instances": per(18), "proxy": per(12), "wrk": per(4), "smoothtool": per(2)}})
	md := cpuTable(tb)
	for _, want := range []string{
		"| smoothserve | 1.11 | 18.0 | 12.0 | 4.0 | 0.0 | 0.0 | 2.0 | 36.0 | 0.75 |",
		"| nginx | 1.00 | 20.0 | 16.0 | 4.0 | 0.0 | 0.0 | 0.0 | 40.0 | 1.00 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("cpuTable lacks\n%s\nin\n%s", want, md)
		}
	}
}
