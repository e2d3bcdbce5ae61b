package proxy

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestDrainServesARequestReadAheadBehindAStream: a request a client
// pipelines behind a quiet stream is served once the stream ends, even if
// draining began meanwhile ("a request the client sent already is
// served"). Over TLS, Gone's readAhead has moved it from the socket into
// pre, where clientSent must see it too: it did not at first, and the
// connection closed as idle, the request read and never answered. Parked:
// the stream parked before the request came, woken by it.
func TestDrainServesARequestReadAheadBehindAStream(t *testing.T) {
	for _, secure := range []bool{false, true} {
		for _, parked := range []bool{false, true} {
			t.Run(fmt.Sprintf("tls=%v/parked=%v", secure, parked), func(t *testing.T) {
				in := startStreamInstance(t)
				route := Route{Port: 1, Hosts: []string{"a.test"}, Set: setOfAddr(t, "s", in.ln.Addr().String())}
				opts := Options{}
				if parked {
					opts = parkOpts(opts)
				}
				var srv *Server
				var cl *client
				if secure {
					route.Port = 2
					f := startTLSProxy(t, opts, route)
					srv = f.srv
					cl, _ = dialTLS(t, f)
				} else {
					f := startProxy(t, opts, route)
					srv = f.srv
					cl = dial(t, f.addr)
				}
				io.WriteString(cl.c, get("a.test", "/events"))
				resp, err := http.ReadResponse(cl.br, nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("/events: %v %v", resp, err)
				}
				expectEvent(t, cl, resp, "first")
				end := in.end(t)
				if parked {
					waitParked(t, srv, 1)
				}
				io.WriteString(cl.c, get("a.test", "/next"))
				time.Sleep(600 * time.Millisecond) // past two looks at the client (every 250 ms)
				srv.SetDraining(true)
				writeEvent(end, true, "second")
				expectEvent(t, cl, resp, "second")
				end.finish()
				expectBodyEnd(t, cl, resp)
				cl.c.SetReadDeadline(time.Now().Add(3 * time.Second))
				next, err := http.ReadResponse(cl.br, nil)
				if err != nil {
					t.Fatalf("the request pipelined behind the stream, then draining: %v; want it answered", err)
				}
				if body, _ := io.ReadAll(next.Body); string(body) != "ok /next" {
					t.Fatalf("the request pipelined behind the stream: %q", body)
				}
			})
		}
	}
}
