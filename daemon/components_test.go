package daemon

import (
	"errors"
	"slices"
	"testing"
)

// The order of the components is what makes both teardowns right: the
// proxy is released (its requests answered, its connections passed)
// before the supervisor lets go of the instances it routes to
// (bench/NOTES.md), and the control API goes last, so that smoothtool
// sees a stop to its end.
func TestComponentsStartInOrderAndTearDownInReverse(t *testing.T) {
	var names []string
	for _, c := range (&Daemon{}).components() {
		names = append(names, c.name)
	}
	if want := []string{"control", "supervisor", "proxy", "host", "auto_restart", "readiness"}; !slices.Equal(names, want) {
		t.Fatalf("components %v, want %v", names, want)
	}

	var got []string
	step := func(what string, err error) component {
		return component{
			name:    what,
			start:   func() { got = append(got, "start "+what) },
			stop:    func() error { got = append(got, "stop "+what); return err },
			release: func() { got = append(got, "release "+what) },
		}
	}
	cFailed := errors.New("c failed")
	cs := []component{step("a", nil), step("b", errors.New("b failed")), step("c", cFailed)}
	startAll(cs)
	if err := stopAll(cs); err != cFailed {
		t.Errorf("stopAll = %v, want the first error in teardown order, %v", err, cFailed)
	}
	releaseAll(cs)
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a", "release c", "release b", "release a"}
	if !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
}
