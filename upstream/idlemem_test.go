package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"smoothserve/internal/idlemem"
	"smoothserve/internal/nofile"
	"smoothserve/internal/tcptest"
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
	if _, err := nofile.Raise(); err != nil {
		t.Fatal(err)
	}
	h := idlemem.Start(t, "TestIdleUpstreamHelper", idleUpHelperEnv, keepAliveInstance(t))
	h.Ask("open 1") // the code's pages and the pools count in the base
	before := h.Measure()
	h.Ask("open " + strconv.Itoa(n))
	idlemem.Report(t, n, "idle pooled connections to an instance", before, h.Measure())
	h.Ask("check")
}

// keepAliveInstance answers every request on a connection with a short
// response, for as long as the connection stays open.
func keepAliveInstance(t *testing.T) string {
	t.Helper()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return tcptest.Serve(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 512)
		for skipHead(br) == nil {
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// skipHead reads through the blank line that ends a message head.
func skipHead(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
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
		if err := skipHead(c.R); err != nil {
			return err
		}
		_, err := c.R.Discard(2)
		return err
	}
	open := func(arg string) error {
		k, _ := strconv.Atoi(arg)
		var conns []*Conn
		for range k {
			b := NewBackend("s", 0, addr)
			c, err := b.Dial()
			if err == nil {
				err = request(c)
			}
			if err != nil {
				return fmt.Errorf("connection %d: %w", pooled+len(conns), err)
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
		return nil
	}
	check := func(string) error {
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
					return fmt.Errorf("a pooled connection after idling: %w", err)
				}
				c.Close()
			}
		}
		return nil
	}
	idlemem.Serve(t, map[string]func(string) error{"open": open, "check": check})
	for _, b := range backends {
		b.CloseIdle()
	}
}
