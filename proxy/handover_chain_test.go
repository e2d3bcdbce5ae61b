package proxy

import (
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

// chain is n proxies in front of one hand-written instance, each with
// its own backend for it (as separate processes would have).
type chain struct {
	px   []*fixture
	sets []*upstream.Set
	bs   []*upstream.Backend
}

func newChain(t *testing.T, n int, opts Options, addr string) *chain {
	rc := &chain{}
	for i := 0; i < n; i++ {
		s := upstream.NewSet("s", time.Second)
		b := upstream.NewBackend("s", 0, addr)
		s.Add(b)
		rc.sets = append(rc.sets, s)
		rc.bs = append(rc.bs, b)
		rc.px = append(rc.px, startProxy(t, opts, Route{Port: 1, Set: s}))
	}
	return rc
}

// pass passes everything proxy i holds to proxy i+1.
func (rc *chain) pass(t *testing.T, i int) PassStats {
	t.Helper()
	var passed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.px[i].srv.PassConnections(ctx, passToSet(rc.px[i+1].srv, rc.sets[i+1], &passed)); err != nil {
		t.Fatalf("PassConnections %d->%d: %v", i, i+1, err)
	}
	return rc.px[i].srv.PassStats()
}

// A stream passed twice (old -> mid -> new) arrives whole, and every
// proxy's in-flight count comes back to 0.
func TestHandoverStreamPassedTwice(t *testing.T) {
	for _, path := range []string{"/chunked", "/length", "/close"} {
		t.Run(path[1:], func(t *testing.T) {
			in := startHandInstance(t, streamPieces)
			rc := newChain(t, 3, Options{}, in.ln.Addr().String())
			cl := dial(t, rc.px[0].addr)
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
			time.Sleep(100 * time.Millisecond)
			rc.pass(t, 0)
			time.Sleep(100 * time.Millisecond)
			rc.pass(t, 1)
			if body, want := <-got, strings.Join(pieces(30), ""); body != want {
				t.Fatalf("body across two hand-overs:\n%q\nwant\n%q", body, want)
			}
			if path != "/close" {
				if r, body := cl.mustDo(get("x", "/after")); r.StatusCode != 200 || body != "after" {
					t.Errorf("next request: %d %q", r.StatusCode, body)
				}
			}
			for i, b := range rc.bs {
				if n := b.Inflight(); n != 0 {
					t.Errorf("proxy %d: %d in flight, want 0", i, n)
				}
			}
		})
	}
}

// A tunnel passed twice keeps every byte both ways.
func TestHandoverTunnelPassedTwice(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, c)
		return false
	})
	rc := newChain(t, 3, Options{}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(cl.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	const lines = 600
	go func() {
		for i := range lines {
			fmt.Fprintf(cl.c, "line %d\n", i)
			time.Sleep(500 * time.Microsecond)
		}
	}()
	go func() {
		time.Sleep(80 * time.Millisecond)
		rc.pass(t, 0)
		time.Sleep(80 * time.Millisecond)
		rc.pass(t, 1)
	}()
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range lines {
		line, err := cl.br.ReadString('\n')
		if want := fmt.Sprintf("line %d\n", i); line != want || err != nil {
			t.Fatalf("echo %d: %q %v, want %q", i, line, err, want)
		}
	}
}

// A client that half-closes its side of a tunnel (it sends nothing more,
// but reads on) before an upgrade: the instance's later bytes still reach
// it after the hand-over.
func TestHandoverTunnelClientHalfClosedThenPassed(t *testing.T) {
	eofs := make(chan struct{}, 4)
	// The second half of the ticks waits for the pass: the tunnel is still
	// open when it comes, however slow the machine.
	passed := make(chan struct{})
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		go func() {
			io.Copy(io.Discard, c)
			eofs <- struct{}{}
		}()
		for i := range 40 {
			if i == 20 {
				<-passed
			}
			if _, err := fmt.Fprintf(c, "tick %d\n", i); err != nil {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		c.Close()
		return false
	})
	rc := newChain(t, 2, Options{}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(cl.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	cl.c.(*net.TCPConn).CloseWrite()
	select {
	case <-eofs:
	case <-time.After(2 * time.Second):
		t.Fatal("the instance never saw the client's half-close")
	}
	go func() {
		defer close(passed)
		time.Sleep(100 * time.Millisecond)
		if st := rc.pass(t, 0); st.Tunnels != 1 {
			t.Errorf("PassStats %+v, want the tunnel passed", st)
		}
	}()
	cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 40 {
		line, err := cl.br.ReadString('\n')
		if want := fmt.Sprintf("tick %d\n", i); line != want || err != nil {
			t.Fatalf("tick %d: %q %v, want %q", i, line, err, want)
		}
	}
}

// HTTP/1.0 client, a Content-Length stream: passed and whole.
func TestHandoverStreamHTTP10(t *testing.T) {
	in := startHandInstance(t, streamPieces)
	rc := newChain(t, 2, Options{}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, "GET /length HTTP/1.0\r\nHost: x\r\n\r\n")
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
	time.Sleep(100 * time.Millisecond)
	if st := rc.pass(t, 0); st.Streams != 1 {
		t.Errorf("PassStats %+v", st)
	}
	if body, want := <-got, strings.Join(pieces(30), ""); body != want {
		t.Fatalf("body:\n%q\nwant\n%q", body, want)
	}
	cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := cl.br.ReadByte(); err != io.EOF {
		t.Errorf("after an HTTP/1.0 response: %v, want EOF", err)
	}
}

// A request pipelined behind a stream, sent while the stream is going (so
// it is in the proxy's reader, or the socket, at the hand-over).
func TestHandoverPipelinedBehindStream(t *testing.T) {
	in := startHandInstance(t, streamPieces)
	rc := newChain(t, 2, Options{}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, get("x", "/chunked"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	io.WriteString(cl.c, get("x", "/after")+"GET /af") // and half of a third
	time.Sleep(100 * time.Millisecond)
	if st := rc.pass(t, 0); st.Streams != 1 {
		t.Errorf("PassStats %+v", st)
	}
	io.WriteString(cl.c, "ter HTTP/1.1\r\nHost: x\r\n\r\n")
	body, err := io.ReadAll(resp.Body)
	if want := strings.Join(pieces(30), ""); string(body) != want || err != nil {
		t.Fatalf("body %q %v", body, err)
	}
	for i := range 2 {
		r, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Fatalf("pipelined %d: %v", i, err)
		}
		b, _ := io.ReadAll(r.Body)
		if string(b) != "after" {
			t.Fatalf("pipelined %d: %q", i, b)
		}
	}
}

// A tunnel whose hand-over fails goes on here both ways; PassConnections
// then waits for it until its context ends, and cuts it.
func TestHandoverTunnelFailedPassGoesOn(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, c)
		return false
	})
	rc := newChain(t, 1, Options{}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(cl.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		done <- rc.px[0].srv.PassConnections(ctx, func(*Handover) error { return fmt.Errorf("gone") })
	}()
	// The echoes go after the failed pass, and before the context ends
	// (which this test decides, not the machine's speed).
	for deadline := time.Now().Add(10 * time.Second); rc.px[0].srv.PassStats().Failed == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pass never failed: %+v", rc.px[0].srv.PassStats())
		}
	}
	for i := range 5 {
		msg := fmt.Sprintf("after failure %d\n", i)
		io.WriteString(cl.c, msg)
		cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if line, err := cl.br.ReadString('\n'); line != msg || err != nil {
			t.Fatalf("echo after a failed pass: %q %v", line, err)
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Errorf("PassConnections returned nil with a tunnel kept here")
	}
	if st := rc.px[0].srv.PassStats(); st.Failed != 1 || st.Cut != 1 {
		t.Errorf("PassStats %+v", st)
	}
}

// HTTP/1.0 client, chunked response: decoded and finished here.
func TestHandoverHTTP10ChunkedFinishedHere(t *testing.T) {
	in := startHandInstance(t, streamPieces)
	rc := newChain(t, 2, Options{}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, "GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n")
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
	time.Sleep(100 * time.Millisecond)
	if st := rc.pass(t, 0); st.Streams != 0 {
		t.Errorf("PassStats %+v", st)
	}
	if body, want := <-got, strings.Join(pieces(30), ""); body != want {
		t.Fatalf("body:\n%q\nwant\n%q", body, want)
	}
}

// A passed stream counts in the new proxy's backend while it goes on (a
// drain there waits for it), and leaves the count when the client leaves.
func TestHandoverPassedStreamInflight(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(c, "6\r\nev %03d\r\n", i%1000); err != nil {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	rc := newChain(t, 2, Options{}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, get("x", "/sse"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6*10)
	io.ReadFull(resp.Body, buf)
	rc.pass(t, 0)
	io.ReadFull(resp.Body, buf)
	if n := rc.bs[1].Inflight(); n != 1 {
		t.Errorf("new proxy's backend: %d in flight during the passed stream, want 1", n)
	}
	if n := rc.bs[0].Inflight(); n != 0 {
		t.Errorf("old proxy's backend: %d in flight, want 0", n)
	}
	cl.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for rc.bs[1].Inflight() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := rc.bs[1].Inflight(); n != 0 {
		t.Errorf("%d in flight after the client left, want 0", n)
	}
}
