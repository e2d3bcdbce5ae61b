package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"smoothserve/control/api"
	"smoothserve/control/client"
)

// measuredStatus is fixedStatus as a daemon that measured its running
// instances sends it: 5678 busy, 1236 idle (cpu_percent 0 in JSON).
func measuredStatus() *api.Status {
	st := *fixedStatus
	st.Services = append([]api.ServiceStatus(nil), fixedStatus.Services...)
	web := &st.Services[1]
	web.Instances = append([]api.InstanceStatus(nil), web.Instances...)
	web.Instances[0].CPUPercent, web.Instances[0].RSSBytes = 12.3, 12_900_000
	web.Instances[2].RSSBytes = 8192
	return &st
}

func TestWriteStatusWithCPUAndMemory(t *testing.T) {
	var b strings.Builder
	writeStatus(&b, measuredStatus(), now, true)
	want := `  SLOT  PORT  PID   STATE     INFLIGHT  SERVED  RESTARTS  UPTIME  CPU    MEM
  0     8089  5678  ready     3         12045   1         2m05s   12.3%  12.3 MiB
  1     8087  -     backoff   0         7       4         -       -      -
  2     8088  1236  starting  0         0       0         1s      0.0%   8.0 KiB
`
	if got := b.String(); !strings.Contains(got, want) {
		t.Errorf("status table:\n%s\nwant it to hold:\n%s", got, want)
	}

	// Not measured: the columns, with nothing in them.
	b.Reset()
	writeStatus(&b, fixedStatus, now, true)
	want = `  SLOT  PORT  PID   STATE     INFLIGHT  SERVED  RESTARTS  UPTIME  CPU  MEM
  0     8089  5678  ready     3         12045   1         2m05s   -    -
`
	if got := b.String(); !strings.Contains(got, want) {
		t.Errorf("status table of an unmeasured status:\n%s\nwant it to hold:\n%s", got, want)
	}
}

func TestBytesText(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{1024*1024 - 1, "1.0 MiB"}, {12_900_000, "12.3 MiB"}, {5 << 30, "5.0 GiB"}, {3 << 40, "3.0 TiB"},
	}
	for _, tt := range tests {
		if got := bytesText(tt.n); got != tt.want {
			t.Errorf("bytesText(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// status shows the CPU and memory the daemon sent; status --json prints
// the daemon's JSON as it is, those fields among its own.
func TestStatusShowsTheDaemonsFigures(t *testing.T) {
	config, socket := install(t)
	serveFakeStatus(t, socket, measuredStatus())

	code, out, errOut := runTool("status", "-c", config)
	if code != 0 || !strings.Contains(out, "  CPU    MEM\n") || !strings.Contains(out, "  12.3%  12.3 MiB\n") {
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	raw, err := client.Dial(socket).StatusJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runTool("status", "--json", "-c", config)
	if code != 0 || out != string(raw) {
		t.Fatalf("status --json: exit %d, stdout %q, stderr %q; want the daemon's JSON %q", code, out, errOut, raw)
	}
	var st struct {
		Services []struct {
			Instances []map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	in := st.Services[1].Instances
	if in[0]["cpu_percent"] != 12.3 || in[0]["rss_bytes"] != 12_900_000.0 {
		t.Errorf("measured instance: %v", in[0])
	}
	if _, ok := in[1]["rss_bytes"]; ok {
		t.Errorf("an instance with no process has rss_bytes: %v", in[1])
	}
	if in[2]["cpu_percent"] != 0.0 || in[2]["rss_bytes"] != 8192.0 {
		t.Errorf("an idle measured instance: %v, want cpu_percent 0 and rss_bytes 8192", in[2])
	}
}
