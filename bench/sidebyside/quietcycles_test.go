package main

import (
	"os/exec"
	"testing"
)

// perf, stopped by the bench's SIGINT, ends by that signal (or exits
// 130); any other end is a failure of the measure.
func TestIsInterrupted(t *testing.T) {
	for _, c := range []struct {
		script string
		want   bool
	}{
		{"kill -INT $$", true},
		{"exit 130", true},
		{"kill -KILL $$", false},
		{"kill -TERM $$", false},
		{"exit 1", false},
	} {
		err := exec.Command("sh", "-c", c.script).Run()
		if got := isInterrupted(err); got != c.want {
			t.Errorf("sh -c %q (%v): isInterrupted = %v, want %v", c.script, err, got, c.want)
		}
	}
}
