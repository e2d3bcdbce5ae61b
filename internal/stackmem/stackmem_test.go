package stackmem

import (
	"regexp"
	"strings"
	"testing"
)

// TestRunPatternMatchesTheNameAlone: -test.run splits its pattern at '/'
// and matches each part against one level of the name; a name with
// regexp characters must match itself, and nothing longer.
func TestRunPatternMatchesTheNameAlone(t *testing.T) {
	for _, name := range []string{"TestA", "TestA/plain", "TestA/a+b", "TestA/x(1)", "TestA/[ab]*"} {
		parts, want := strings.Split(runPattern(name), "/"), strings.Split(name, "/")
		if len(parts) != len(want) {
			t.Fatalf("%q: pattern %q", name, runPattern(name))
		}
		for i, p := range parts {
			re := regexp.MustCompile(p)
			if !re.MatchString(want[i]) || re.MatchString(want[i]+"x") || re.MatchString("x"+want[i]) {
				t.Errorf("%q: part %q does not match %q alone", name, p, want[i])
			}
		}
	}
}
