package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Megabytes both ways through a tunnel under back-pressure, passed three
// times: every byte once, in order.
func TestHandoverTunnelBulkPassedThrice(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		buf := make([]byte, 3000)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return false
				}
			}
			if err != nil {
				return false
			}
		}
	})
	rc := newChain(t, 4, Options{}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(cl.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	const total = 16 << 20
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	cl.c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		for off := 0; off < total; off += 10000 {
			if _, err := cl.c.Write(data[off:min(off+10000, total)]); err != nil {
				return
			}
		}
	}()
	passes := make(chan struct{})
	go func() {
		defer close(passes)
		for i := 0; i < 3; i++ {
			time.Sleep(150 * time.Millisecond)
			rc.pass(t, i)
		}
	}()
	got := make([]byte, 0, total)
	buf := make([]byte, 5000)
	for len(got) < total {
		n, err := cl.br.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		if len(got) < 2<<20 {
			time.Sleep(100 * time.Microsecond) // slow at first: back-pressure
		}
	}
	for i := range got {
		if got[i] != data[i] {
			t.Fatalf("byte %d differs (of %d)", i, total)
		}
	}
	<-passes // a fast machine may be through the bytes first
	for i := 0; i < 3; i++ {
		if st := rc.px[i].srv.PassStats(); st.Tunnels != 1 {
			t.Errorf("proxy %d: %+v", i, st)
		}
	}
}

// A big download (length, or chunks of many sizes written in pieces)
// passed three times while the client reads slowly: whole and in order.
func TestHandoverBulkStreamPassedThrice(t *testing.T) {
	const total = 8 << 20
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i*13 + i>>11)
	}
	for _, path := range []string{"/length", "/chunked"} {
		t.Run(path[1:], func(t *testing.T) {
			in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
				if req.URL.Path == "/after" {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter")
					return true
				}
				if req.URL.Path == "/length" {
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", total)
					for off := 0; off < total; off += 7001 {
						if _, err := c.Write(data[off:min(off+7001, total)]); err != nil {
							return false
						}
					}
					return true
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
				sz := 1
				for off := 0; off < total; {
					n := min(sz, total-off)
					// size line, data and CRLF in separate writes, split oddly
					fmt.Fprintf(c, "%x", n)
					io.WriteString(c, "\r\n")
					h := n / 2
					c.Write(data[off : off+h])
					c.Write(data[off+h : off+n])
					io.WriteString(c, "\r\n")
					off += n
					sz = sz*3%40000 + 1
				}
				io.WriteString(c, "0\r\n\r\n")
				return true
			})
			rc := newChain(t, 4, Options{}, in.ln.Addr().String())
			cl := dial(t, rc.px[0].addr)
			cl.c.SetDeadline(time.Now().Add(60 * time.Second))
			io.WriteString(cl.c, get("x", path))
			resp, err := http.ReadResponse(cl.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			passes := make(chan struct{})
			go func() {
				defer close(passes)
				for i := 0; i < 3; i++ {
					time.Sleep(150 * time.Millisecond)
					rc.pass(t, i)
				}
			}()
			got := make([]byte, 0, total)
			buf := make([]byte, 4000)
			for {
				n, err := resp.Body.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v", len(got), err)
				}
				if len(got) < 3<<20 {
					time.Sleep(50 * time.Microsecond)
				}
			}
			if len(got) != total {
				t.Fatalf("%d bytes, want %d", len(got), total)
			}
			for i := range got {
				if got[i] != data[i] {
					t.Fatalf("byte %d differs", i)
				}
			}
			<-passes // the last may come after the body: then it passes the connection between requests
			if r, body := cl.mustDo(get("x", "/after")); body != "after" {
				t.Errorf("after: %d %q", r.StatusCode, body)
			}
			for i := 0; i < 3; i++ {
				if st := rc.px[i].srv.PassStats(); st.Streams+st.Clients != 1 {
					t.Errorf("proxy %d: %+v", i, st)
				}
			}
			for i, b := range rc.bs {
				if n := b.Inflight(); n != 0 {
					t.Errorf("proxy %d: %d in flight", i, n)
				}
			}
		})
	}
}

// Shutdown (a stop) whose deadline passes because a stream is still going
// (an SSE stream does not end before its instance is told to stop, and
// instances are told after the proxy's Shutdown): the WebSockets are cut
// by the proxy too, before their instances could close them.
func TestHandoverShutdownDeadlineCutsTunnels(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		if req.URL.Path == "/ws" {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(c, c)
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		for {
			if _, err := io.WriteString(c, "3\r\nev\n\r\n"); err != nil {
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	rc := newChain(t, 1, Options{}, in.ln.Addr().String())
	ws := dial(t, rc.px[0].addr)
	io.WriteString(ws.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(ws.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	sse := dial(t, rc.px[0].addr)
	io.WriteString(sse.c, get("x", "/sse"))
	if _, err := http.ReadResponse(sse.br, nil); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, sse.br)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rc.px[0].srv.Shutdown(ctx)
	// The supervisor would now SIGTERM the instance, whose app closes its
	// WebSocket with 1001: the tunnel must still be there to carry it.
	io.WriteString(ws.c, "still there?\n")
	ws.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := ws.br.ReadString('\n'); err != nil {
		t.Fatalf("the WebSocket after a stop whose deadline a stream outlasted: %q %v; want it left for its instance to close", line, err)
	}
}

// A stream whose hand-over failed ends here, its head having said
// keep-alive; the client's next request, sent as soon as it has the
// body, is answered (with close), as after a failed pass between two
// requests (the grace counts from when the client may send).
func TestHandoverFailedStreamPassNextRequest(t *testing.T) {
	in := startHandInstance(t, streamPieces)
	// The grace runs from the stream's end, 900 ms in, not from the
	// failure, 50 ms in (it would be over by then): the client's time to
	// send its next request, long enough for a loaded machine.
	rc := newChain(t, 1, Options{ShutdownGrace: 500 * time.Millisecond}, in.ln.Addr().String())
	cl := dial(t, rc.px[0].addr)
	io.WriteString(cl.c, get("x", "/chunked"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		rc.px[0].srv.PassConnections(context.Background(), func(*Handover) error { return fmt.Errorf("gone") })
	}()
	body, err := io.ReadAll(resp.Body)
	if want := strings.Join(pieces(30), ""); string(body) != want || err != nil {
		t.Fatalf("body %q %v", body, err)
	}
	if resp.Close {
		t.Fatal("the head said close")
	}
	r, b, err := cl.do(get("x", "/after"))
	if err != nil {
		t.Fatalf("next request on the kept-alive connection right after the stream: %v", err)
	}
	if b != "after" || !r.Close {
		t.Errorf("next: %q close=%v", b, r.Close)
	}
}
