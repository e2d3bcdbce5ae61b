package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestWaitGone(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	err := waitGone(context.Background(), pid, 300*time.Millisecond, func(time.Duration) {})
	if err == nil || !strings.Contains(err.Error(), "still running after 300ms") {
		t.Fatalf("waitGone of a live process: %v, want a timeout", err)
	}
	// Killed but not reaped yet: a zombie has exited all the same.
	cmd.Process.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for !pidGone(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !pidGone(pid) {
		t.Fatal("a killed, unreaped process is not gone")
	}
	cmd.Wait()
	if err := waitGone(context.Background(), pid, time.Second, func(time.Duration) {}); err != nil {
		t.Errorf("waitGone of a reaped process: %v", err)
	}
}
