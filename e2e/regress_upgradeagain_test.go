package e2e

import (
	"testing"
	"time"
)

// TestUpgradeRightAfterAnUpgrade: an upgrade asked as soon as the process
// the last one replaced has gone may reach the new daemon before it has
// seen that process go (tableflip's watch of it, a goroutine, has not
// run yet on a loaded machine). It waits for that, where it was refused
// ("still replacing the previous one").
func TestUpgradeRightAfterAnUpgrade(t *testing.T) {
	in := startInstalled(t, "", "")
	load := mixedLoad(in.env, "web.test")
	time.Sleep(300 * time.Millisecond)
	for i := range 5 {
		if _, _, err := upgradeBySIGHUP(in); err != nil {
			t.Fatalf("upgrade %d, asked as the process the one before replaced had gone: %v", i+1, err)
		}
	}
	if res := load.Stop(); res.Err() != nil {
		t.Errorf("requests across the upgrades: %v", res.Err())
	}
}
