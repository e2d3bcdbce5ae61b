package idlemem

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/procstat"
)

// settleTime is how long a measurement waits before it reads the RSS: for
// idle connections to be parked and the runtime's background scavenger to
// return pages.
const settleTime = 4 * time.Second

// Helper is a helper process speaking Serve's protocol.
type Helper struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// Start runs this test binary again as its test testName, with the
// environment variable env set to value (which tells that test to be the
// helper); the helper ends with the test.
func Start(t testing.TB, testName, env, value string) *Helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+testName+"$")
	cmd.Env = append(os.Environ(), env+"="+value)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the helper exits at EOF
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return &Helper{t: t, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

// Line reads a line the helper printed (without its newline).
func (h *Helper) Line() string {
	h.t.Helper()
	line, err := h.out.ReadString('\n')
	if err != nil {
		h.t.Fatalf("helper: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

// Ask sends the helper a command and waits until it has carried it out.
func (h *Helper) Ask(command string) {
	h.t.Helper()
	fmt.Fprintln(h.stdin, command)
	if got := h.Line(); got != "ok" {
		h.t.Fatalf("helper, asked %q: %q", command, got)
	}
}

// RSS is the helper's resident memory, in bytes, at three moments of a
// Measure.
type RSS struct {
	Settled   int64 // settleTime after the step measured (the figure an operator, or a bench, reads)
	AfterGC   int64 // then after two collections (what the runtime's forced ones do in 4 minutes)
	AfterFree int64 // then after debug.FreeOSMemory
}

// Measure reads the helper's RSS settleTime after now, then after asking
// it to collect garbage ("gc") and to free memory ("free"), each followed
// by settleTime.
func (h *Helper) Measure() RSS {
	h.t.Helper()
	var m RSS
	m.Settled = h.settle()
	h.Ask("gc")
	m.AfterGC = h.settle()
	h.Ask("free")
	m.AfterFree = h.settle()
	return m
}

func (h *Helper) settle() int64 {
	h.t.Helper()
	time.Sleep(settleTime)
	rss, err := procstat.RSS(h.cmd.Process.Pid)
	if err != nil {
		h.t.Fatal(err)
	}
	return rss
}

// Report logs what each of n things costs (after ÷ before, at each
// moment) and returns the bytes each costs at the first.
func Report(t testing.TB, n int, what string, before, after RSS) float64 {
	t.Helper()
	perOne := func(b, a int64) float64 { return float64(a-b) / float64(n) }
	for _, m := range []struct {
		when          string
		before, after int64
	}{
		{"4 s after", before.Settled, after.Settled},
		{"then after two GCs", before.AfterGC, after.AfterGC},
		{"then after FreeOSMemory", before.AfterFree, after.AfterFree},
	} {
		t.Logf("%d %s, %s: RSS %.1f MiB -> %.1f MiB: %.2f KiB each",
			n, what, m.when, float64(m.before)/(1<<20), float64(m.after)/(1<<20), perOne(m.before, m.after)/1024)
	}
	return perOne(before.Settled, after.Settled)
}

// Serve is the helper's side: it carries out each command line on its
// stdin and answers "ok" on its stdout, until stdin ends. "gc" collects
// garbage twice (a sync.Pool drops what it holds in two), "free" calls
// debug.FreeOSMemory, and "NAME ARG" calls cmds[NAME](ARG); an unknown
// command or an error fails t.
func Serve(t testing.TB, cmds map[string]func(arg string) error) {
	t.Helper()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		name, arg, _ := strings.Cut(in.Text(), " ")
		switch f := cmds[name]; {
		case name == "gc":
			runtime.GC()
			runtime.GC()
		case name == "free":
			debug.FreeOSMemory()
		case f == nil:
			t.Fatalf("helper: unknown command %q", in.Text())
		default:
			if err := f(arg); err != nil {
				t.Fatalf("helper: %s: %v", in.Text(), err)
			}
		}
		fmt.Println("ok")
	}
}
