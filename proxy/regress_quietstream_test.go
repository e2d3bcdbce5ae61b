package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/syncbuf"
)

// Found by an independent review of 5551d0e (a quiet stream's wait outside
// the instance's reader).

// TestInstanceResetEndingABodyIsAFailure: an instance that resets its
// connection right after the bytes of a body that ends at the close has
// failed, as before the wait: the look at its socket before a read must
// not clear the reset into a clean end.
func TestInstanceResetEndingABodyIsAFailure(t *testing.T) {
	big := strings.Repeat("z", 200<<10)
	for i := range 5 {
		in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"+big)
			c.(*net.TCPConn).SetLinger(0)
			return false // closed: a reset
		})
		var logs syncbuf.Buffer
		f := startProxy(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
		cl := dial(t, f.addr)
		io.WriteString(cl.c, get("x", "/"))
		cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		waitUntil(t, "the failure logged", func() bool { return strings.Contains(logs.String(), "reset") })
		if t.Failed() {
			t.Fatalf("run %d: the log: %s", i, logs.String())
		}
	}
}

// TestClosingTheServerEndsAQuietStream: Close, or the end of Shutdown's
// context, during a quiet stream closes the instance's connection too, at
// the next look at the client (250 ms), not when the instance next sends.
func TestClosingTheServerEndsAQuietStream(t *testing.T) {
	for _, how := range []string{"Close", "Shutdown's context"} {
		t.Run(how, func(t *testing.T) {
			ended := make(chan time.Time, 1)
			in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n")
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				c.Read(make([]byte, 1)) // the proxy's close
				ended <- time.Now()
				return false
			})
			f := startProxy(t, Options{ShutdownGrace: 100 * time.Millisecond}, Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
			cl := dial(t, f.addr)
			io.WriteString(cl.c, get("x", "/events"))
			resp, err := http.ReadResponse(cl.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadFull(resp.Body, make([]byte, 2))
			time.Sleep(100 * time.Millisecond) // quiet: waiting outside the reader
			closed := time.Now()
			if how == "Close" {
				f.srv.Close()
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				f.srv.Shutdown(ctx)
				cancel()
			}
			expectSoon(t, ended, closed, "the instance's connection closed, after the proxy closed the client's,")
		})
	}
}
