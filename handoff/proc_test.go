package handoff

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestIdentifyChild(t *testing.T) {
	cmd := startSleeper(t, "")
	want, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id, err := Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	start, exe := id.StartTime, id.Exe
	if exe != want {
		t.Errorf("exe = %q, want %q", exe, want)
	}
	self, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if start < self.StartTime {
		t.Errorf("child start time %d is before ours %d", start, self.StartTime)
	}
	if _, err := Verify(identify(t, cmd.Process.Pid)); err != nil {
		t.Errorf("Verify of a live child: %v", err)
	}
}

func TestVerifyMismatch(t *testing.T) {
	cmd := startSleeper(t, "")
	in := identify(t, cmd.Process.Pid)

	wrongStart := in
	wrongStart.StartTime++
	_, err := Verify(wrongStart)
	if err == nil || errors.Is(err, ErrGone) || !strings.Contains(err.Error(), "another process now (start time") {
		t.Errorf("Verify with a wrong start time = %v, want a start time mismatch", err)
	}

	wrongExe := in
	wrongExe.Exe = "/usr/bin/some-other-binary"
	_, err = Verify(wrongExe)
	if err == nil || errors.Is(err, ErrGone) || !strings.Contains(err.Error(), "another executable") {
		t.Errorf("Verify with a wrong exe = %v, want an exe mismatch", err)
	}
}

func TestVerifyDead(t *testing.T) {
	cmd := startSleeper(t, "")
	in := identify(t, cmd.Process.Pid)
	syscall.Kill(in.Pid, syscall.SIGKILL)
	cmd.Wait()
	if _, err := Verify(in); !errors.Is(err, ErrGone) {
		t.Errorf("Verify of a reaped pid = %v, want ErrGone", err)
	}
	if _, err := Identify(in.Pid); !errors.Is(err, ErrGone) {
		t.Errorf("Identify of a reaped pid = %v, want ErrGone", err)
	}
}

// A child that exited but was not waited for is a zombie: gone, though its
// pid still exists.
func TestVerifyZombie(t *testing.T) {
	cmd := startSleeper(t, "")
	in := identify(t, cmd.Process.Pid)
	syscall.Kill(in.Pid, syscall.SIGKILL)
	waitFor(t, "a zombie", 5*time.Second, func() bool {
		st, err := readStat(in.Pid)
		return err == nil && st.State == 'Z'
	})
	if _, err := Verify(in); !errors.Is(err, ErrGone) {
		t.Errorf("Verify of a zombie = %v, want ErrGone", err)
	}
	if _, err := Identify(in.Pid); !errors.Is(err, ErrGone) {
		t.Errorf("Identify of a zombie = %v, want ErrGone", err)
	}
}

// Deploying a new binary by renaming it over the old path leaves running
// instances on the old, now deleted, inode: they are still the same
// processes.
func TestVerifyExeReplacedByRename(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "svc")
	copyFile(t, bin)
	cmd := startSleeper(t, bin)
	in := identify(t, cmd.Process.Pid)
	if want, _ := filepath.EvalSymlinks(bin); in.Exe != want {
		t.Fatalf("exe = %q, want %q", in.Exe, want)
	}

	next := filepath.Join(dir, "svc.new")
	if err := os.WriteFile(next, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	raw, err := os.Readlink("/proc/" + itoa(in.Pid) + "/exe")
	if err != nil || !strings.HasSuffix(raw, " (deleted)") {
		t.Fatalf("exe link after rename = %q, %v; want it marked deleted", raw, err)
	}
	if _, err := Verify(in); err != nil {
		t.Errorf("Verify after the binary was renamed over: %v", err)
	}
	if id, err := Identify(in.Pid); err != nil || id.Exe != in.Exe {
		t.Errorf("Identify after rename = %q, %v; want %q", id.Exe, err, in.Exe)
	}
}

// copyFile copies the test binary to dst, executable, closed before it runs.
func copyFile(t *testing.T, dst string) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
