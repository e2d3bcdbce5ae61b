package stackmem

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

const noShrink = "gcshrinkstackoff=1"

// InProcessOfItsOwn reports whether the test t may measure here: true in
// a process where the GC does not shrink stacks. Otherwise it runs t's
// test again in such a process (this test binary, with GODEBUG extended),
// within t's deadline, logs its output, fails t unless the test ran there
// and passed, and returns false: t returns.
func InProcessOfItsOwn(t *testing.T) bool {
	t.Helper()
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, noShrink) {
		return true
	}
	if godebug != "" {
		godebug += ","
	}
	ctx := context.Background()
	args := []string{"-test.run=" + runPattern(t.Name()), "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Second)) // the child is killed before the parent's timeout
		defer cancel()
		args = append(args, "-test.timeout="+time.Until(d).String())
	}
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug+noShrink)
	out, err := cmd.CombinedOutput()
	t.Logf("in a process where stacks do not shrink:\n%s", out)
	switch {
	case err != nil:
		t.Fatalf("%s with GODEBUG=%s: %v", t.Name(), noShrink, err)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()+" "):
		t.Fatalf("%s did not run with GODEBUG=%s", t.Name(), noShrink)
	}
	return false
}

// runPattern is the -test.run pattern of the test (or subtest) name alone.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// InUse is the stack the process's goroutines hold now, after a GC.
func InUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.StackInuse
}
