package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"smoothserve/upstream"
)

// TestTunnelIsNotARequestInFlight: once a WebSocket is open, its instance's
// drain does not wait for it (the instance is told to stop while it is
// open, to close it itself), the tunnel goes on carrying bytes meanwhile,
// and it ends when the instance closes its end.
func TestTunnelIsNotARequestInFlight(t *testing.T) {
	closeNow := make(chan struct{})
	in := startInstance(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, _ := w.(http.Hijacker).Hijack()
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		go func() { <-closeNow; conn.Write([]byte("bye\n")); conn.Close() }()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo:" + line)
			brw.Flush()
		}
	})
	set, b, cl := proxyToOne(t, in)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echo(t, cl.c, cl.br, "one")

	deadline := time.Now().Add(5 * time.Second)
	for b.Inflight() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := b.Inflight(); n != 0 {
		t.Fatalf("%d requests in flight with only a WebSocket open, want 0", n)
	}
	set.Remove(b)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if !b.WaitIdle(ctx) {
		t.Fatal("the drain of an instance with only a WebSocket open waited for it")
	}
	echo(t, cl.c, cl.br, "two") // still open after the drain

	close(closeNow) // the instance, told to stop, closes its WebSocket itself
	line, err := cl.br.ReadString('\n')
	if line != "bye\n" {
		t.Fatalf("after the instance closed: %q %v, want its own last words", line, err)
	}
	cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := cl.br.ReadByte(); err != io.EOF {
		t.Fatalf("the client's end after the instance closed its own: %v, want EOF", err)
	}
}

func echo(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	io.WriteString(c, msg+"\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || line != "echo:"+msg+"\n" {
		t.Fatalf("through the tunnel: %q %v, want echo:%s", line, err, msg)
	}
}

// TestClientLeavingAQuietStreamClosesTheInstanceConnection: a client that
// closes its connection while the instance is between two events is
// noticed soon (expectSoon); the instance sees the disconnect and its
// request leaves the in-flight count.
func TestClientLeavingAQuietStreamClosesTheInstanceConnection(t *testing.T) {
	disconnected := make(chan time.Time, 1)
	in := startInstance(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			disconnected <- time.Now()
		case <-time.After(10 * time.Second):
		}
	})
	_, b, cl := proxyToOne(t, in)
	io.WriteString(cl.c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	first := make([]byte, len("data: one\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("first event: %v", err)
	}
	left := time.Now()
	cl.c.Close()
	expectSoon(t, disconnected, left, "the instance heard of the client leaving")
	deadline := time.Now().Add(5 * time.Second)
	for b.Inflight() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := b.Inflight(); n != 0 {
		t.Errorf("%d requests in flight after the client left, want 0", n)
	}
}

// expectSoon waits for the time at which what happened, which must be
// within 2 s of since (a look at the client every 250 ms, and the time a
// loaded machine takes to pass the news on); it fails the test if none
// comes within 3 s.
func expectSoon(t *testing.T, at <-chan time.Time, since time.Time, what string) {
	t.Helper()
	select {
	case got := <-at:
		if d := got.Sub(since); d > 2*time.Second {
			t.Errorf("%s after %v, want within 2s", what, d)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("%s: not within 3s", what)
	}
}

// proxyToOne proxies to in alone, and returns its set, its backend and a
// client connected to the proxy.
func proxyToOne(t *testing.T, in *instance) (*upstream.Set, *upstream.Backend, *client) {
	t.Helper()
	set := upstream.NewSet(in.name, time.Second)
	b := upstream.NewBackend(in.name, 0, in.addr())
	set.Add(b)
	f := startProxy(t, Options{}, Route{Port: 1, Set: set})
	return set, b, dial(t, f.addr)
}
