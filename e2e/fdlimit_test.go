package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOutOfDescriptorsIdleConnectionsMakeRoom: with the daemon's limit of
// open files lowered (prlimit) to a few dozen above what it holds, and
// idle keep-alive connections holding the room, new clients are still
// answered, and requests that need new connections to the instance too:
// the daemon closes idle connections to make room (its pooled ones to the
// instances unused for a second, then the clients' idle the longest), as
// nginx reuses its idle keep-alive connections when it runs out of
// connections. It counts the clients' (smoothserve_connections_shed_total)
// and says so in its log. The connections it keeps serve on. Plain HTTP,
// and HTTP/1.1 over TLS.
func TestOutOfDescriptorsIdleConnectionsMakeRoom(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		e := newEnv(t, 8)
		admin := e.withAdmin()
		e.service("web", "web.test", 2, "")
		d := e.startDaemon()
		d.waitPids(e.proxyAddr(), "web.test", 2, 15*time.Second)
		dial := func() (net.Conn, error) { return net.DialTimeout("tcp", e.proxyAddr(), 5*time.Second) }
		makesRoom(t, d, admin, e.proxyPort, dial)
	})
	t.Run("tls", func(t *testing.T) {
		h := newHTTPSEnv(t, 9)
		admin := "127.0.0.1:" + strconv.Itoa(h.ports.next())
		h.writeMain(fmt.Sprintf("HTTPSPort: %d\nAdminAddr: %s\n", h.httpsPort, admin))
		h.tlsService("web", "web.test", 2, "")
		d := h.startDaemon()
		h.waitHTTPS(d, "web.test")
		cfg := &tls.Config{ServerName: "web.test", RootCAs: h.ca.pool, NextProtos: []string{"http/1.1"}}
		dial := func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(h.httpsPort), cfg)
		}
		makesRoom(t, d, admin, h.httpsPort, dial)
	})
}

// makesRoom is the test on d, whose service web.test listens on port, with
// its metrics at admin; dial opens a client connection to port.
func makesRoom(t *testing.T, d *daemon, admin string, port int, dial func() (net.Conn, error)) {
	const room = 80
	limit := uint64(openFDs(t, d.pid()) + room)
	if err := unix.Prlimit(d.pid(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}

	// 70 connections, a request each, then idle: parked after 1-2 s.
	idle := openClients(t, dial, 70)
	time.Sleep(3500 * time.Millisecond)
	// The last 20 of them ask at once, each held by its instance for a
	// while: 20 connections to the instances, most of them new, where
	// about 10 descriptors are left.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for _, c := range idle[50:] {
		wg.Go(func() {
			if err := c.get("/slow?ms=300"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a request needing a new connection to its instance: %v", err)
	}
	time.Sleep(1200 * time.Millisecond) // the log's next line may come
	// New clients, one after another, 20 more than there is room for:
	// each accept past the room takes the descriptors of idle connections
	// closed for it.
	fresh := openClients(t, dial, int(limit)-openFDs(t, d.pid())+20)
	for i, c := range fresh {
		if err := c.get("/"); err != nil {
			t.Errorf("new connection %d, kept: %v", i, err)
		}
	}
	closed := 0
	for _, c := range idle {
		if c.get("/") != nil {
			closed++
		}
	}
	for _, c := range append(idle, fresh...) {
		c.nc.Close()
	}
	if closed == 0 {
		t.Errorf("no idle connection was closed to make room")
	}
	var shed float64
	if !waitUntil(5*time.Second, func() bool {
		shed = sum(scrape(t, admin), `^smoothserve_connections_shed_total$`)
		return shed > 0
	}) {
		t.Fatalf("smoothserve_connections_shed_total is 0")
	}
	// (More may have been closed than these: waitHTTPS's client keeps
	// its connection too, idle the longest.)
	if shed < float64(closed) {
		t.Errorf("smoothserve_connections_shed_total %v, but %d idle connections were closed", shed, closed)
	}
	out := d.out.String()
	for _, at := range []string{"at=\"connecting to 127.0.0.1:", "at=\"accepting on port " + strconv.Itoa(port)} {
		if !strings.Contains(out, "out of file descriptors; closed idle connections, the longest idle first, to make room\" "+at) {
			t.Errorf("the log does not say that it made room %s…:\n%s", at, tail(out, 3000))
		}
	}
	if last := openClients(t, dial, 1); len(last) == 1 {
		last[0].nc.Close()
	}
	t.Logf("room for %d descriptors: %v idle connections of 70 closed to make room", room, shed)
}

// openFDs is how many descriptors pid has open.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// keptClient is a client's keep-alive connection to the proxy.
type keptClient struct {
	nc net.Conn
	br *bufio.Reader
}

// openClients opens n connections with dial one after another, each with
// a GET of / answered 200.
func openClients(t *testing.T, dial func() (net.Conn, error), n int) []*keptClient {
	t.Helper()
	cs := make([]*keptClient, 0, n)
	for i := range n {
		nc, err := dial()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c := &keptClient{nc: nc, br: bufio.NewReader(nc)}
		cs = append(cs, c)
		if err := c.get("/"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	return cs
}

// get sends a GET of path for web.test and reads its answer, which must
// be a 200, within 10 s.
func (c *keptClient) get(path string) error {
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.nc, "GET %s HTTP/1.1\r\nHost: web.test\r\n\r\n", path); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}
