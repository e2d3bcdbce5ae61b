package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/upstream"
)

// handInstance is an instance written by hand, to control every byte of
// its responses; it counts the connections it accepted.
type handInstance struct {
	ln    net.Listener
	conns atomic.Int64
}

// startHandInstance serves each request on each connection with respond,
// which reports whether the connection goes on.
func startHandInstance(t *testing.T, respond func(c net.Conn, req *http.Request) bool) *handInstance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &handInstance{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			in.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil || !respond(c, req) {
						return
					}
				}
			}()
		}
	}()
	return in
}

// pieces is what the streaming responses below send, one piece at a time.
func pieces(n int) []string {
	var p []string
	for i := range n {
		p = append(p, fmt.Sprintf("event %03d\n", i))
	}
	return p
}

// streamPieces answers /chunked, /length and /close with the pieces,
// framed so, every few milliseconds (a chunk's data split in two writes),
// and /after with "after".
func streamPieces(c net.Conn, req *http.Request) bool {
	ps := pieces(30)
	total := len(strings.Join(ps, ""))
	pause := func() { time.Sleep(15 * time.Millisecond) }
	switch req.URL.Path {
	case "/chunked":
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for _, p := range ps {
			fmt.Fprintf(c, "%x\r\n%s", len(p), p[:4])
			pause()
			io.WriteString(c, p[4:]+"\r\n")
			pause()
		}
		io.WriteString(c, "0\r\n\r\n")
	case "/length":
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", total)
		for _, p := range ps {
			io.WriteString(c, p)
			pause()
		}
	case "/close":
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
		for _, p := range ps {
			io.WriteString(c, p)
			pause()
		}
		return false
	default:
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter")
	}
	return true
}

// TestStreamIsPassedFromWhereItStands: a response still streaming when
// PassConnections begins goes on in the other proxy from where it stood,
// over the same connections (a length, chunk by chunk, or up to the
// close): every byte once, in order, well framed; then the client's
// connection goes on there, and the instance's is pooled there.
func TestStreamIsPassedFromWhereItStands(t *testing.T) {
	for _, path := range []string{"/chunked", "/length", "/close"} {
		t.Run(path[1:], func(t *testing.T) {
			in := startHandInstance(t, streamPieces)
			oldSet, nextSet := upstream.NewSet("s", time.Second), upstream.NewSet("s", time.Second)
			oldSet.Add(upstream.NewBackend("s", 0, in.ln.Addr().String()))
			nextB := upstream.NewBackend("s", 0, in.ln.Addr().String())
			nextSet.Add(nextB)
			old := startProxy(t, Options{}, Route{Port: 1, Set: oldSet})
			next := startProxy(t, Options{}, Route{Port: 1, Set: nextSet})

			cl := dial(t, old.addr)
			io.WriteString(cl.c, get("x", path))
			resp, err := http.ReadResponse(cl.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			go func() {
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					b = append(b, " ERROR: "+err.Error()...)
				}
				got <- string(b)
			}()
			time.Sleep(200 * time.Millisecond)
			var passed atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			if err := old.srv.PassConnections(ctx, passToSet(next.srv, nextSet, &passed)); err != nil {
				t.Fatalf("PassConnections: %v", err)
			}
			// Bounds a hang: that the stream was not waited for shows in
			// PassStats (one waited for would pass as a client).
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("PassConnections took %v with a stream open; it passes streams without waiting for them", took)
			}
			if st := old.srv.PassStats(); st.Streams != 1 {
				t.Errorf("PassStats = %+v, want the stream passed", st)
			}
			want := strings.Join(pieces(30), "")
			if body := <-got; body != want {
				t.Fatalf("body across the hand-over:\n%q\nwant\n%q", body, want)
			}
			if path == "/close" {
				return
			}
			if resp.Close {
				t.Errorf("the response said close; it was to be kept alive")
			}
			if r, body := cl.mustDo(get("x", "/after")); r.StatusCode != 200 || body != "after" {
				t.Errorf("next request on the passed connection: %d %q", r.StatusCode, body)
			}
			if n := in.conns.Load(); n != 1 {
				t.Errorf("the instance saw %d connections, want 1: the streaming one, pooled by the new proxy and reused", n)
			}
			if n := nextB.Inflight(); n != 0 {
				t.Errorf("%d requests in flight on the new proxy's backend after the stream ended, want 0", n)
			}
		})
	}
}

// TestTunnelIsPassedWithTheBytesInFlight: a tunnel carrying traffic both
// ways is passed to the other proxy, both connections; nothing is lost,
// repeated or reordered, and the instance keeps its one connection.
func TestTunnelIsPassedWithTheBytesInFlight(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, c) // echo
		return false
	})
	oldSet, nextSet := upstream.NewSet("s", time.Second), upstream.NewSet("s", time.Second)
	oldSet.Add(upstream.NewBackend("s", 0, in.ln.Addr().String()))
	nextSet.Add(upstream.NewBackend("s", 0, in.ln.Addr().String()))
	old := startProxy(t, Options{}, Route{Port: 1, Set: oldSet})
	next := startProxy(t, Options{}, Route{Port: 1, Set: nextSet})

	cl := dial(t, old.addr)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(cl.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	const lines = 400
	sent := make(chan error, 1)
	go func() {
		for i := range lines {
			if _, err := fmt.Fprintf(cl.c, "line %d\n", i); err != nil {
				sent <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		sent <- nil
	}()
	passedAt := make(chan PassStats, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		var passed atomic.Int64
		old.srv.PassConnections(context.Background(), passToSet(next.srv, nextSet, &passed))
		passedAt <- old.srv.PassStats()
	}()
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range lines {
		line, err := cl.br.ReadString('\n')
		if want := fmt.Sprintf("line %d\n", i); line != want || err != nil {
			t.Fatalf("echo %d through the tunnel: %q %v, want %q", i, line, err, want)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if st := <-passedAt; st.Tunnels != 1 || st.Cut != 0 {
		t.Errorf("PassStats = %+v, want the tunnel passed", st)
	}
	echo := func(msg string) {
		io.WriteString(cl.c, msg)
		if line, err := cl.br.ReadString('\n'); line != msg || err != nil {
			t.Fatalf("after the hand-over: %q %v, want %q", line, err, msg)
		}
	}
	echo("after\n")
	if n := in.conns.Load(); n != 1 {
		t.Errorf("the instance saw %d connections, want its one", n)
	}
}

// TestShutdownLeavesTunnelsToTheirInstances: Shutdown returns once the
// requests are done, with a tunnel still open and working (its instance,
// stopped next, closes it); Close ends it.
func TestShutdownLeavesTunnelsToTheirInstances(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, c)
		return false
	})
	set := upstream.NewSet("s", time.Second)
	set.Add(upstream.NewBackend("s", 0, in.ln.Addr().String()))
	f := startProxy(t, Options{}, Route{Port: 1, Set: set})
	cl := dial(t, f.addr)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(cl.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echoLine := func(msg string) error {
		io.WriteString(cl.c, msg+"\n")
		cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := cl.br.ReadString('\n')
		if err == nil && line != msg+"\n" {
			err = fmt.Errorf("got %q", line)
		}
		return err
	}
	if err := echoLine("before"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Shutdown took %v with only a tunnel open; it does not wait for tunnels", took)
	}
	if err := echoLine("during"); err != nil {
		t.Fatalf("the tunnel after Shutdown: %v; it stays open for its instance to close", err)
	}
	f.srv.Close()
	cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := cl.br.ReadByte(); err == nil {
		t.Fatal("the tunnel is still open after Close")
	}
}

// TestStreamWhosePassingFailsGoesOnHere: when the other process cannot
// take a stream, it is relayed here to its end, whole; the response after
// it says close.
func TestStreamWhosePassingFailsGoesOnHere(t *testing.T) {
	in := startHandInstance(t, streamPieces)
	set := upstream.NewSet("s", time.Second)
	set.Add(upstream.NewBackend("s", 0, in.ln.Addr().String()))
	f := startProxy(t, Options{ShutdownGrace: 5 * time.Second}, Route{Port: 1, Set: set})
	cl := dial(t, f.addr)
	io.WriteString(cl.c, get("x", "/chunked")+get("x", "/after"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		f.srv.PassConnections(context.Background(), func(*Handover) error { return fmt.Errorf("the new process is gone") })
	}()
	body, err := io.ReadAll(resp.Body)
	if want := strings.Join(pieces(30), ""); string(body) != want || err != nil {
		t.Fatalf("body: %q %v, want %q", body, err, want)
	}
	next, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatalf("the pipelined request after the stream: %v", err)
	}
	after, _ := io.ReadAll(next.Body)
	if string(after) != "after" || !next.Close {
		t.Errorf("the response after a stream kept here: %q close=%v, want \"after\" with close", after, next.Close)
	}
	if st := f.srv.PassStats(); st.Failed == 0 || st.Streams != 0 {
		t.Errorf("PassStats = %+v, want a failure and nothing passed", st)
	}
}

func TestRelayStateRoundTripsAndRejectsNonsense(t *testing.T) {
	for _, r := range []relay{
		{framing: bodyLength, keep: true, reuse: true, left: 1 << 40},
		{framing: bodyChunked, inChunk: true, left: 7},
		{framing: bodyChunked},
		{framing: bodyUntilClose, left: -1},
	} {
		var got relay
		rid, err := got.decode(r.encode([]byte("rid-1")))
		if err != nil || got != r || string(rid) != "rid-1" {
			t.Errorf("%+v came back as %+v %q %v", r, got, rid, err)
		}
	}
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{9}, make([]byte, relayHeader)...),
		"framing":     (&relay{framing: bodyNone}).encode(nil),
		"no length":   (&relay{framing: bodyLength}).encode(nil),
		"close, left": (&relay{framing: bodyUntilClose, left: 5}).encode(nil),
	} {
		var got relay
		if _, err := got.decode(b); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, got)
		}
	}
}
