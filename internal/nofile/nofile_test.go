package nofile

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The raised limit is the hard one, and what a child gets.
func TestRaise(t *testing.T) {
	n, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != n || lim.Max != n {
		t.Errorf("after Raise: soft %d, hard %d; want both %d", lim.Cur, lim.Max, n)
	}
	out, err := exec.Command("sh", "-c", "ulimit -Sn").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "unlimited" && got != strconv.FormatUint(n, 10) {
		t.Errorf("a child's soft limit %s, want %d", got, n)
	}
}
