package acmetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// buildTimeout bounds locating (and, on a cold build cache, compiling) the
// two tools. A cold build of pebble takes about 30 s on two CPUs.
const buildTimeout = 5 * time.Minute

// binaries are the paths of the two tool executables.
type binaries struct {
	pebble, challtestsrv string
}

var tools struct {
	once sync.Once
	bins binaries
	took time.Duration
	err  error
}

// findTools returns the tool executables, locating them once per process.
//
// It asks `go tool -n NAME`, which builds the tool pinned in go.mod into
// the go build cache (compiling only on a cold cache) and prints the
// cached executable's path instead of running it. Running that path
// directly, rather than `go tool NAME`, keeps the pid the test holds the
// tool's own: `go tool` runs the tool as its child, and a SIGKILL sent to
// the go command (on a timeout, say) would orphan pebble. The cache owns
// the executables, so nothing is left behind in temporary directories.
func findTools() (binaries, time.Duration, error) {
	tools.once.Do(func() {
		start := time.Now()
		tools.bins, tools.err = locateTools()
		tools.took = time.Since(start)
	})
	return tools.bins, tools.took, tools.err
}

func locateTools() (binaries, error) {
	goCmd, err := goCommand()
	if err != nil {
		return binaries{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	dir := moduleDir()
	var b binaries
	// One after the other: the second shares most packages with the first
	// and then only links; in parallel both would compile them.
	if b.pebble, err = goToolPath(ctx, goCmd, dir, "pebble"); err != nil {
		return binaries{}, err
	}
	if b.challtestsrv, err = goToolPath(ctx, goCmd, dir, "pebble-challtestsrv"); err != nil {
		return binaries{}, err
	}
	return b, nil
}

// goToolPath builds the tool name if needed and returns its executable.
func goToolPath(ctx context.Context, goCmd, dir, name string) (string, error) {
	cmd := exec.CommandContext(ctx, goCmd, "tool", "-n", name)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("acmetest: `go tool -n %s` in %q: %v\n%s", name, dir, err, stderr.String())
	}
	path := strings.TrimSpace(stdout.String())
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("acmetest: `go tool -n %s` printed %q, which is not an executable file "+
			"(is the go build cache disabled or is GOOS/GOARCH a cross target?)", name, path)
	}
	return path, nil
}

// goCommand is the go command that runs the tests: `go test` puts its
// GOROOT/bin first on PATH.
func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("acmetest: no go command on PATH nor at %s", p)
	}
	return p, nil
}

// moduleDir is the root of the module this file is in, so that the go.mod
// that pins the tools is the one used even if a test changed directory;
// "" (the working directory) when the source is not on disk.
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if parent := filepath.Dir(dir); parent == dir {
			return ""
		}
	}
}
