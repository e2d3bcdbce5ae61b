package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialWS opens a WebSocket to p's /ws, closed at the end of the test.
func dialWS(t *testing.T, p *demoProc) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/ws", p.port), nil)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

func TestWebSocketEcho(t *testing.T) {
	p := startDemo(t, nil)
	c, resp := dialWS(t, p)
	if got, want := resp.Header.Get("Demo-Pid"), strconv.Itoa(p.cmd.Process.Pid); got != want {
		t.Errorf("Demo-Pid %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, msg := range []string{"hello", "", "zwei wörter"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read the echo of %q: %v", msg, err)
		}
		if want := "echo: " + msg; typ != websocket.MessageText || string(got) != want {
			t.Errorf("echo of %q: %v %q, want text %q", msg, typ, got, want)
		}
	}

	// A binary message is refused with 1003.
	if err := c.Write(ctx, websocket.MessageBinary, []byte{0, 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Errorf("after a binary message: %v, want close status 1003", err)
	}

	// A plain GET of /ws is not an upgrade: 426 Upgrade Required.
	resp, err := http.Get(p.url("/ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("GET /ws without an upgrade: status %d, want 426", resp.StatusCode)
	}
}

// TestSIGTERMClosesWebSocketsWith1001: on SIGTERM every open WebSocket gets
// the demo's own close frame (1001, "server restarting") at once, while a
// request in flight still finishes, and the demo exits 0 when both are
// done.
func TestSIGTERMClosesWebSocketsWith1001(t *testing.T) {
	p := startDemo(t, nil)
	const n = 3
	ended := make(chan error, n)
	for range n {
		c, _ := dialWS(t, p)
		// Read until the connection ends, as a browser does: the close
		// handshake needs the client to read the server's close frame.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					ended <- err
					return
				}
			}
		}()
	}
	slow := dialDemo(t, p)
	fmt.Fprintf(slow, "GET /slow?ms=1000 HTTP/1.1\r\nHost: demo\r\n\r\n")
	waitRead(t, slow) // in flight at the demo: not merely sent

	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		select {
		case err := <-ended:
			if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway || !strings.Contains(err.Error(), goingAwayReason) {
				t.Errorf("WebSocket %d ended with %v (status %d), want 1001 %q", i, err, got, goingAwayReason)
			}
			if took := time.Since(sent); took > 500*time.Millisecond {
				t.Errorf("WebSocket %d closed %v after SIGTERM, want at once (not after the requests in flight)", i, took.Round(time.Millisecond))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("WebSocket %d still open 10s after SIGTERM; stderr:\n%s", i, p.stderr)
		}
	}

	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatalf("request in flight lost on SIGTERM: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "slow 1000ms") {
		t.Errorf("request in flight: status %d body %q, want 200 slow 1000ms", resp.StatusCode, body)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	if took := time.Since(sent); took > 3*time.Second {
		t.Errorf("demo exited %v after SIGTERM, want about the 1s of the request in flight", took.Round(time.Millisecond))
	}
}
