package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// build compiles smoothserve, smoothtool and the demo from the working tree
// in root into dir/bin.
func build(root, dir string) (binaries, error) {
	bin := filepath.Join(dir, "bin")
	b := binaries{
		smoothserve: filepath.Join(bin, "smoothserve"),
		smoothtool:  filepath.Join(bin, "smoothtool"),
		demo:        filepath.Join(bin, "demo"),
	}
	for _, t := range []struct{ out, pkg string }{
		{b.smoothserve, "./cmd/smoothserve"},
		{b.smoothtool, "./cmd/smoothtool"},
		{b.demo, "./examples/demo"},
	} {
		cmd := exec.Command("go", "build", "-o", t.out, t.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the Makefile builds them
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}

// requireTools fails naming what bench/install-deps.sh would install;
// h2load only for the HTTP/2 rows (h2).
func requireTools(h2 bool) error {
	var missing []string
	tools := []string{"nginx", "haproxy", "caddy", "wrk", "go"}
	if h2 {
		tools = append(tools, "h2load")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not installed: %s (bench/install-deps.sh installs them; make bench runs it)", strings.Join(missing, ", "))
	}
	return nil
}

// about describes the machine, the tools and the code measured, as markdown.
func about(root string, s settings) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- smoothserve: %s\n", gitDescribe(root))
	fmt.Fprintf(&b, "- machine: %s cores (nproc), %s, %s, Linux %s\n",
		firstLine(command("", "nproc")), cpuModel(), memTotal(), firstLine(command("", "uname", "-r")))
	fmt.Fprintf(&b, "- versions: %s, %s, HAProxy %s, Caddy %s, %s\n",
		word(command("", "go", "version"), 2),
		strings.TrimPrefix(firstLine(command("", "nginx", "-v")), "nginx version: "),
		word(command("", "haproxy", "-v"), 2),
		firstLine(command("", "caddy", "version")),
		"wrk "+word(command("", "wrk", "-v"), 1)+", h2load "+strings.TrimPrefix(word(command("", "h2load", "--version"), 1), "nghttp2/"))
	fmt.Fprintf(&b, "- runs: wrk -t%d, %s each after a %s warm-up; rounds: %d, in each every proxy in turn, "+
		"starting one further along each round; the tables show the median of the rounds\n",
		wrkThreads, s.duration, s.warmup, s.rounds)
	fmt.Fprintf(&b, "- all on this machine at once: wrk, the proxy, the 3 demo instances (and the idle other proxies)\n")
	return b.String()
}

// command is the combined output of a command, or why it failed.
func command(dir, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if len(out) == 0 && err != nil {
		return fmt.Sprintf("(%s: %v)", name, err)
	}
	// wrk -v prints its version and exits 1: the output is what counts.
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// word is the nth word (from 0) of the first line of s, or the line.
func word(s string, n int) string {
	f := strings.Fields(firstLine(s))
	if len(f) > n {
		return f[n]
	}
	return firstLine(s)
}

func gitDescribe(root string) string {
	head := firstLine(command(root, "git", "rev-parse", "--short", "HEAD"))
	if strings.TrimSpace(command(root, "git", "status", "--porcelain", "--untracked-files=no")) != "" {
		head += " with uncommitted changes"
	}
	return "commit " + head + " (" + runtime.Version() + ")"
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "CPU unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "CPU unknown"
}

func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kib int64
		if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kib); err == nil {
			return fmt.Sprintf("%.1f GiB RAM", float64(kib)/(1<<20))
		}
	}
	return "memory unknown"
}
