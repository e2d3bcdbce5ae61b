package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"smoothserve/internal/procstat"
)

// child is a process the benchmark started and waits for. Its owner is the
// goroutine that started it; done is closed once the process has been reaped.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // where its stdout and stderr go
	done chan struct{}
	err  error // how it exited; valid once done is closed
}

// startedPids are the pids of every child startChild started: reapOrphans
// leaves them to their Wait.
var startedPids sync.Map

// startChild starts argv with its output in logPath. The child gets its own
// process group, so that a Ctrl-C at the terminal reaches only the benchmark,
// which then stops every child in order.
func startChild(name, logPath string, env []string, argv ...string) (*child, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	startedPids.Store(cmd.Process.Pid, true)
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// stop sends sig, then SIGKILL if the process is still there after grace.
// Safe to call twice; a process already gone is not an error.
func (c *child) stop(sig syscall.Signal, grace time.Duration) {
	if done, _ := c.exited(); done {
		return
	}
	c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
		return
	case <-time.After(grace):
	}
	fmt.Fprintf(os.Stderr, "bench: %s (pid %d) still running %s after %s: killing it\n", c.name, c.pid(), grace, sig)
	c.cmd.Process.Kill()
	<-c.done
}

// logTail is the end of the child's log, for an error message.
func (c *child) logTail() string { return tail(c.log, 15) }

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// procStat is what the benchmark needs of /proc/PID/stat.
type procStat struct {
	comm  string
	state byte
	ppid  int
}

func readStat(pid int) (procStat, error) {
	st, err := procstat.Read(pid)
	if err != nil {
		return procStat{}, err
	}
	return procStat{comm: st.Comm, state: st.State, ppid: st.Ppid}, nil
}

// alive reports whether pid runs: a zombie (exited, not yet reaped by a
// parent the benchmark does not control) counts as gone.
func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

// children lists the live processes whose parent is pid, and their comm.
func children(pid int) map[int]string {
	return childrenOf(pid, func(state byte) bool { return state != 'Z' })
}

// zombieChildren lists the children of pid that have exited and wait to be
// reaped, and their comm.
func zombieChildren(pid int) map[int]string {
	return childrenOf(pid, func(state byte) bool { return state == 'Z' })
}

func childrenOf(pid int, want func(state byte) bool) map[int]string {
	kids := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(p); err == nil && st.ppid == pid && want(st.state) {
			kids[p] = st.comm
		}
	}
	return kids
}

// waitGone waits until pid has exited, up to timeout.
func waitGone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still running after %s", pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// vmHWM is the peak resident set size of pid in KiB (VmHWM in /proc/PID/status).
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// resetHWM sets each process's peak RSS back to its current RSS (Linux
// clear_refs "5"), so that the peak read after a run is the peak of that run.
func resetHWM(pids []int) {
	for _, pid := range pids {
		os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	}
}

// samplePeak samples the VmHWM of pids(), summed over the processes, every
// 200 ms until ctx is done, and returns the highest sum in KiB. Summing the
// peaks overstates a little when the processes peak at different times; it
// is what "peak RSS of nginx, master and workers" means here.
func samplePeak(ctx context.Context, pids func() []int) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			var sum int64
			for _, pid := range pids() {
				if kb, err := vmHWM(pid); err == nil {
					sum += kb
				}
			}
			peak = max(peak, sum)
			select {
			case <-ctx.Done():
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// freePort is a port on addr that nothing listens on now.
func freePort(addr string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// freePortRange is the first of n consecutive free ports on addr, below the
// kernel's ephemeral range: the proxies' own outgoing connections take ports
// from that range, and one of them could hold a port an instance needs next.
func freePortRange(addr string, n int) (int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	start := 20000 + int(time.Now().UnixNano()%1000)*10
	for base := start; base+n < low; base += n {
		if portsFree(addr, base, n) {
			return base, nil
		}
	}
	return 0, errors.New("no free range of ports below the ephemeral range")
}

func portsFree(addr string, base, n int) bool {
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// mkdirs creates dir and its subfolders.
func mkdirs(dir string, subs ...string) error {
	for _, s := range append([]string{""}, subs...) {
		if err := os.MkdirAll(filepath.Join(dir, s), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// becomeSubreaper makes the benchmark the parent of its orphaned
// descendants. An upgrade leaves the instances, and the new daemon, without
// their parent: the old daemon exits. Their new parent would be PID 1, which
// on some machines (containers, microVMs) never reaps, so every instance that
// exits later would stay a zombie. Adopted here, reapOrphans reaps them.
func becomeSubreaper() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// orphanComms are the programs that become the benchmark's children only by
// adoption: it starts the first smoothserve itself (a child it waits for),
// never a demo. Any other child is waited for by whoever started it, and
// reaping it here would take its exit status away from that Wait.
var orphanComms = map[string]bool{"demo": true, "smoothserve": true}

// reapOrphans reaps, every 200 ms until ctx is done, the adopted processes
// that have exited.
func reapOrphans(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		reapOrphansOnce()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func reapOrphansOnce() {
	for pid, comm := range zombieChildren(os.Getpid()) {
		if _, own := startedPids.Load(pid); orphanComms[comm] && !own {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
	}
}
