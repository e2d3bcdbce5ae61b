package supervisor

import (
	"maps"
	"testing"
	"time"
)

// listed maps the port of each instance the state file lists to its pid.
func listed(t *testing.T, stateFile string) map[int]int {
	t.Helper()
	m := map[int]int{}
	for _, in := range readState(t, stateFile).Instances {
		m[in.Port] = in.Pid
	}
	return m
}

// A failed upgrade: the new process adopts and may write the state file
// (here it lists one instance of two) before it is killed, letting every
// instance be. The old one thaws and goes on running both: its state file
// lists them again at once, and still at the next Freeze.
func TestThawRewritesTheStateFile(t *testing.T) {
	cfg := testConfig(t, 2, "normal")
	a, stateFile := keeping(t, cfg)
	before := a.ready()
	if err := a.sup.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if got := listed(t, stateFile); !maps.Equal(got, before) {
		t.Fatalf("state file at Freeze lists %v, want %v", got, before)
	}
	st := readState(t, stateFile)
	st.Instances = st.Instances[:1]
	writeState(t, stateFile, st) // the failed process's

	a.sup.Thaw()
	eventually(t, 2*time.Second, "the state file lists both again", func() bool {
		return maps.Equal(listed(t, stateFile), before)
	})
	if err := a.sup.Freeze(); err != nil {
		t.Fatalf("second Freeze: %v", err)
	}
	defer a.sup.Thaw()
	if got := listed(t, stateFile); !maps.Equal(got, before) {
		t.Errorf("at the next Freeze the state file lists %v, want %v", got, before)
	}
}
