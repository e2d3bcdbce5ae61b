package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/procstat"
)

// The memory an idle pooled connection to an instance costs the proxy
// (issue 20), measured in a process of its own: this test binary re-run
// as a helper that dials SMOOTHSERVE_IDLEMEM_UPSTREAM connections to an
// instance in the test's process, sends a request on each, reads the
// answer through its R and puts it back in a Backend's pool (as many
// Backends to the instance as the pool's bound asks). Its RSS before and
// after, divided by their number, is the figure. Off unless the variable
// is set.
//
//	SMOOTHSERVE_IDLEMEM_UPSTREAM=2000 go test -run TestIdleUpstreamMemory -v ./upstream/

const idleUpHelperEnv = "SMOOTHSERVE_IDLEMEM_UPSTREAM_HELPER" // the instance's address: be the helper

func TestIdleUpstreamMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SMOOTHSERVE_IDLEMEM_UPSTREAM"))
	if n <= 0 || testing.Short() {
		t.Skip("set SMOOTHSERVE_IDLEMEM_UPSTREAM=2000 to measure")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	addr := keepAliveInstance(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleUpstreamHelper$")
	cmd.Env = append(os.Environ(), idleUpHelperEnv+"="+addr)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
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
	out := bufio.NewReader(stdout)
	ask := func(line string) {
		t.Helper()
		fmt.Fprintln(stdin, line)
		got, err := out.ReadString('\n')
		if err != nil || strings.TrimSpace(got) != "ok" {
			t.Fatalf("helper, asked %q: %q %v", line, got, err)
		}
	}
	pid := cmd.Process.Pid
	settle := func() int64 {
		t.Helper()
		time.Sleep(4 * time.Second) // the pools' sweeps, and the runtime's background scavenger
		rss, err := procstat.RSS(pid)
		if err != nil {
			t.Fatal(err)
		}
		return rss
	}
	measure := func() (now, gc, freed int64) {
		t.Helper()
		now = settle()
		ask("gc")
		gc = settle()
		ask("free")
		freed = settle()
		return now, gc, freed
	}
	ask("open 1") // the code's pages and the pools count in the base
	before, beforeGC, beforeFreed := measure()
	ask("open " + strconv.Itoa(n))
	after, afterGC, afterFreed := measure()
	for _, m := range []struct {
		what          string
		before, after int64
	}{
		{"4 s after they were pooled", before, after},
		{"then after two GCs", beforeGC, afterGC},
		{"then after FreeOSMemory", beforeFreed, afterFreed},
	} {
		t.Logf("%d idle pooled connections to an instance, %s: RSS %.1f MiB -> %.1f MiB: %.2f KiB a connection",
			n, m.what, float64(m.before)/(1<<20), float64(m.after)/(1<<20), float64(m.after-m.before)/float64(n)/1024)
	}
	ask("check")
}

// keepAliveInstance answers every request on a connection with a short
// response, for as long as the connection stays open.
func keepAliveInstance(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 512)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestIdleUpstreamHelper is the helper process of TestIdleUpstreamMemory:
// it answers "ok" to each line on its stdin once done: "open N" opens N
// pooled connections more, "gc" collects garbage twice, "free" calls
// debug.FreeOSMemory, "check" takes every pooled connection once and
// makes a request on it; it exits when its stdin closes.
func TestIdleUpstreamHelper(t *testing.T) {
	addr := os.Getenv(idleUpHelperEnv)
	if addr == "" {
		t.Skip("the helper process of TestIdleUpstreamMemory")
	}
	signal.Ignore(syscall.SIGPIPE)
	var backends []*Backend
	pooled := 0
	request := func(c *Conn) error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		for {
			line, err := c.R.ReadSlice('\n')
			if err != nil {
				return err
			}
			if len(line) <= 2 {
				break
			}
		}
		_, err := c.R.Discard(2)
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "open":
			k, _ := strconv.Atoi(arg)
			var conns []*Conn
			for range k {
				b := NewBackend("s", 0, addr)
				c, err := b.Dial()
				if err == nil {
					err = request(c)
				}
				if err != nil {
					t.Fatalf("connection %d: %v", pooled+len(conns), err)
				}
				conns = append(conns, c)
			}
			for _, c := range conns {
				if pooled%maxIdlePerBackend == 0 {
					backends = append(backends, NewBackend("s", len(backends), addr))
				}
				backends[len(backends)-1].Put(c)
				pooled++
			}
		case "gc":
			// Two, as the runtime's forced collections every 2 minutes
			// do in 4: a sync.Pool drops what it holds in two.
			runtime.GC()
			runtime.GC()
		case "free":
			debug.FreeOSMemory()
		case "check":
			for _, b := range backends {
				for range len(b.pool) {
					c, err := b.Get(0)
					if err == nil && !c.Reused {
						err = fmt.Errorf("dialed, not reused")
					}
					if err == nil {
						err = request(c)
					}
					if err != nil {
						t.Fatalf("a pooled connection after idling: %v", err)
					}
					c.Close()
				}
			}
		}
		fmt.Println("ok")
	}
	for _, b := range backends {
		b.CloseIdle()
	}
}
