package main

import (
	"testing"
	"time"

	"smoothserve/config"
)

// stop all waits as long as the configuration's drains and kill_timeout
// may take, 120 s at least.
func TestExitBudgetCountsTheTimeouts(t *testing.T) {
	short := &config.Config{Services: []*config.Service{{StopTimeout: 30 * time.Second, KillTimeout: 10 * time.Second}}}
	long := &config.Config{Services: []*config.Service{
		{StopTimeout: 30 * time.Second, KillTimeout: 130 * time.Second},
		{StopTimeout: 60 * time.Second, KillTimeout: 10 * time.Second},
	}}
	for _, tt := range []struct {
		cfg  *config.Config
		want time.Duration
	}{
		{nil, exitTimeout},
		{short, exitTimeout},
		{long, 2*60*time.Second + 130*time.Second + 30*time.Second},
	} {
		if got := exitBudget(tt.cfg); got != tt.want {
			t.Errorf("exitBudget = %v, want %v", got, tt.want)
		}
	}
}
