package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/loadclient"
)

// needNode skips the test where Node.js is not installed, but for CI,
// where .ci/run installs it and its absence is a failure.
func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("CI=%s and node is not on PATH (.ci/run installs Debian's nodejs): %v", ci, err)
		}
		t.Skipf("node is not on PATH: %v", err)
	}
}

// A Node.js service as it runs in the wild (examples/node/server.js: Node's
// own http module, which closes keep-alive connections left idle, and
// streams with res.write) behind smoothserve: rolling restarts under the
// strict load lose no request, and server-sent events reach the client one
// by one. Its idle connections close after 200 ms: keepAliveTimeout 200 ms
// without the second Node adds to it.
func TestNodeJSInstances(t *testing.T) {
	needNode(t)
	e := newEnv(t, 8)
	copyFile(t, filepath.Join("..", "examples", "node", "server.js"), filepath.Join(e.dir, "app", "node", "server.js"))
	first := e.serviceOf("./app/node/server.js", "node", "node.test", 3, "args: [\"-port={port}\", \"-keep-alive-timeout=200ms\", \"-keep-alive-buffer=0s\"]\n")
	d := e.startDaemon()
	d.waitPids(e.proxyAddr(), "node.test", 3, 15*time.Second)

	// Checked on an instance itself, before a rollout moves it.
	t.Run("closes idle connections", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", first), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		// Timed from before the request: the instance's idle clock starts
		// after it, however late a loaded machine lets this test read the
		// response. Node's default would close it after 5 s, or 1.2 s
		// with its extra second.
		sent := time.Now()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: node.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if b, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("read on the idle connection: %q %v, want EOF", b, err)
		}
		if took := time.Since(sent); took < 150*time.Millisecond || took > time.Second {
			t.Errorf("the instance closed its idle connection %v after the request, want about 200ms", took.Round(time.Millisecond))
		}
	})

	t.Run("rolling restarts", func(t *testing.T) {
		cfg := loadclient.Config{
			Addr: e.proxyAddr(), Host: "node.test", Hello: "hello from node", Conns: 8,
			Mix:    []loadclient.Kind{loadclient.Get, loadclient.Get, loadclient.Slow, loadclient.Post, loadclient.Stream},
			SlowMS: 300, PostMaxBytes: 64 << 10, StreamLines: 10, StreamMS: 30,
		}
		load := loadclient.Start(context.Background(), cfg)
		cfg.Conns, cfg.Pause = 4, 600*time.Millisecond
		cfg.Mix = []loadclient.Kind{loadclient.Get, loadclient.Post, loadclient.Stream}
		paused := loadclient.Start(context.Background(), cfg)
		time.Sleep(500 * time.Millisecond)
		for round := 1; round <= 3; round++ {
			before := instancePids(d)
			code, out, errOut := e.tool("restart", "node")
			if code != 0 {
				load.Stop()
				paused.Stop()
				t.Fatalf("round %d: smoothtool restart node: exit %d\n%s%s", round, code, out, errOut)
			}
			t.Logf("round %d:\n%s", round, strings.TrimSpace(out))
			after := instancePids(d)
			for pid := range before {
				if after[pid] {
					t.Errorf("round %d: pid %d was not replaced (before %v, after %v)", round, pid, before, after)
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
		res, pres := load.Stop(), paused.Stop()
		t.Logf("load: %v; after pauses: %v", res, pres)
		if err := res.Err(); err != nil {
			t.Errorf("requests to Node.js instances failed across 3 rolling restarts: %v", err)
		}
		if err := pres.Err(); err != nil {
			t.Errorf("requests sent after a pause to Node.js instances failed across 3 rolling restarts: %v", err)
		}
		for _, k := range []loadclient.Kind{loadclient.Get, loadclient.Slow, loadclient.Post, loadclient.Stream} {
			if res.ByKind[k].OK == 0 {
				t.Errorf("no %v request completed: the load did not exercise it", k)
			}
		}
	})

	t.Run("server-sent events", func(t *testing.T) {
		resp, head, pieces := getStreamed(t, e.proxyAddr(), "node.test", "/events?n=4&ms=500", "\n\n")
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q, want text/event-stream", ct)
		}
		checkStreamed(t, resp, head, pieces, 4, 500*time.Millisecond)
	})
}
