package stackmem

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

const noShrink = "gcshrinkstackoff=1"

// InProcessOfItsOwn reports whether the test t may measure here: true in
// a process where the GC does not shrink stacks. Otherwise it runs t's
// test again in such a process (this test binary, with GODEBUG set),
// logs its output, fails t if it failed, and returns false: t returns.
func InProcessOfItsOwn(t *testing.T) bool {
	t.Helper()
	if strings.Contains(os.Getenv("GODEBUG"), noShrink) {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "GODEBUG="+noShrink)
	out, err := cmd.CombinedOutput()
	t.Logf("in a process where stacks do not shrink:\n%s", out)
	if err != nil {
		t.Fatalf("%s with GODEBUG=%s: %v", t.Name(), noShrink, err)
	}
	return false
}

// InUse is the stack the process's goroutines hold now, after a GC.
func InUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.StackInuse
}
