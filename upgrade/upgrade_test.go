package upgrade

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"parent hasn't exited", "still replacing the previous one"},
		{"new child pid=12 timed out", "not ready within UpgradeTimeout; it was killed"},
		{"child pid=12 exited: exit status 1", "child pid=12 exited: exit status 1"},
	}
	for _, tt := range tests {
		if got := explain(errors.New(tt.in)).Error(); !strings.Contains(got, tt.want) {
			t.Errorf("explain(%q) = %q, want it to say %q", tt.in, got, tt.want)
		}
	}
}

func TestReadPid(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pid")
	os.WriteFile(good, []byte("1234\n"), 0o644)
	if pid, err := readPid(good); err != nil || pid != 1234 {
		t.Errorf("readPid = %d, %v; want 1234", pid, err)
	}
	bad := filepath.Join(dir, "bad.pid")
	os.WriteFile(bad, []byte("twelve"), 0o644)
	if _, err := readPid(bad); err == nil || !strings.Contains(err.Error(), "not a pid") {
		t.Errorf("readPid of garbage: %v", err)
	}
	if _, err := readPid(filepath.Join(dir, "missing.pid")); err == nil {
		t.Error("readPid of a missing file: no error")
	}
}

// More than a pipe holds would block the write with nobody reading yet.
func TestPassBytesRefusesMoreThanAPipeHolds(t *testing.T) {
	err := (&Upgrader{}).PassBytes("big", make([]byte, 4097))
	if err == nil || !strings.Contains(err.Error(), "more than a pipe holds") || !strings.Contains(err.Error(), "big") {
		t.Errorf("PassBytes(4097 bytes) = %v, want a refusal naming it", err)
	}
}
