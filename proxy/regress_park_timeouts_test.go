package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHeaderAndBodyTimeoutAfterResume: a parked connection woken by
// the first bytes of a head (or a head whose body then stalls) is still held
// to HeaderTimeout (BodyTimeout), not IdleTimeout.
func TestHeaderAndBodyTimeoutAfterResume(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	f := startProxy(t, parkOpts(Options{IdleTimeout: 8 * time.Second, HeaderTimeout: 300 * time.Millisecond, BodyTimeout: 300 * time.Millisecond}),
		Route{Port: 1, Set: setOf(t, "s", in)})
	for _, tc := range []struct{ name, send string }{
		{"head", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := dial(t, f.addr)
			cl.mustDo(get("x", "/"))
			waitUntil(t, "parked", func() bool { return f.srv.parker.count() >= 1 })
			t0 := time.Now()
			io.WriteString(cl.c, tc.send)
			cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadAll(cl.br)
			if d := time.Since(t0); err != nil || d > 2*time.Second {
				t.Fatalf("stalled %s after resume: ended after %v (%v), want about 300ms", tc.name, d, err)
			}
		})
	}
}

// TestRequestAtParkTime: requests sent around the moment their
// connection parks are all answered promptly (no lost edge).
func TestRequestAtParkTime(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{parkAfter: 20 * time.Millisecond, IdleTimeout: 30 * time.Second}, Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	for i := range 120 {
		// parkAfter 20 ms parks after 10–20 ms: sweep the gap 5–25 ms.
		time.Sleep(time.Duration(5+i%21) * time.Millisecond)
		cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, body, err := cl.do(get("x", "/"))
		if err != nil || !strings.HasPrefix(body, "a GET") || resp.Close {
			t.Fatalf("request %d: %v %q", i, err, body)
		}
	}
}
