package proctree

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestChildIsListedAndKnowsItsParent(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	if got := Parent(pid); got != os.Getpid() {
		t.Errorf("Parent(%d) = %d, want %d", pid, got, os.Getpid())
	}
	if kids := Children(os.Getpid()); !slices.Contains(kids, pid) {
		t.Errorf("Children(%d) = %v, want it to hold %d", os.Getpid(), kids, pid)
	}
}

func TestGoneProcessHasNoParent(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	if got := Parent(cmd.Process.Pid); got != -1 {
		t.Errorf("Parent of reaped pid %d = %d, want -1", cmd.Process.Pid, got)
	}
}
