package procstat

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseNetstat(t *testing.T) {
	const good = "TcpExt: SyncookiesSent InOctets\nTcpExt: 1 2\n" +
		"IpExt: InNoRoutes InTruncatedPkts InOctets OutOctets InMcastOctets\n" +
		"IpExt: 0 0 457080987866 456770236443 7\n"
	in, out, err := parseNetstat(1, []byte(good))
	if err != nil || in != 457080987866 || out != 456770236443 {
		t.Errorf("parseNetstat: %d %d %v", in, out, err)
	}
	for name, text := range map[string]string{
		"no IpExt":     "TcpExt: A\nTcpExt: 1\n",
		"names only":   "IpExt: InOctets OutOctets\n",
		"fewer values": "IpExt: InOctets OutOctets\nIpExt: 1\n",
		"no OutOctets": "IpExt: InOctets X\nIpExt: 1 2\n",
		"not a number": "IpExt: InOctets OutOctets\nIpExt: 1 x\n",
		"negative":     "IpExt: InOctets OutOctets\nIpExt: -1 2\n",
		"empty":        "",
	} {
		if _, _, err := parseNetstat(7, []byte(text)); err == nil || !strings.Contains(err.Error(), "/proc/7/net/netstat") {
			t.Errorf("%s: err %v, want one naming /proc/7/net/netstat", name, err)
		}
	}
}

// TestThisProcess: what the process collector reads of this process.
func TestThisProcess(t *testing.T) {
	pid := os.Getpid()
	virtual, rss, err := Memory(pid)
	if err != nil || rss <= 0 || virtual < rss {
		t.Errorf("Memory: virtual %d, resident %d, %v", virtual, rss, err)
	}
	if n, err := OpenFiles(pid); err != nil || n < 3 {
		t.Errorf("OpenFiles: %d, %v", n, err)
	}
	f, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	n0, _ := OpenFiles(pid)
	f.Close()
	if n1, _ := OpenFiles(pid); n1 != n0-1 {
		t.Errorf("OpenFiles after a Close: %d, before it %d", n1, n0)
	}
	st, err := Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	started, err := st.Started()
	if err != nil || time.Since(started) < 0 || time.Since(started) > time.Hour {
		t.Errorf("Started: %v (%v ago), %v", started, time.Since(started), err)
	}
	if _, _, err := NetOctets(pid); err != nil {
		t.Errorf("NetOctets: %v", err)
	}
	if _, _, err := Memory(1 << 30); err == nil {
		t.Errorf("Memory of a pid that does not exist: no error")
	}
}
