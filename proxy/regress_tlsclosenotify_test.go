package proxy

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestTLSClientLeavingAQuietStreamWithCloseNotify: a TLS client that
// leaves a quiet stream (HTTP/1.1) the orderly way, close_notify then its
// FIN, is heard of without the instance sending: the alert is a record in
// the socket, which a look at the socket takes for a request on its way;
// the FIN behind it shows only once the record is read. The instance's
// connection closes soon, parked or not.
func TestTLSClientLeavingAQuietStreamWithCloseNotify(t *testing.T) {
	for _, parked := range []bool{false, true} {
		t.Run(fmt.Sprintf("parked=%v", parked), func(t *testing.T) {
			in := startStreamInstance(t)
			opts := Options{}
			if parked {
				opts = parkOpts(opts)
			}
			f := startTLSProxy(t, opts, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "s", in.ln.Addr().String())})
			cl, _ := dialTLS(t, f)
			io.WriteString(cl.c, get("a.test", "/events"))
			resp, err := http.ReadResponse(cl.br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("/events over TLS: %v %v", resp, err)
			}
			expectEvent(t, cl, resp, "first")
			in.end(t)
			if parked {
				waitParked(t, f.srv, 1)
			} else {
				time.Sleep(300 * time.Millisecond) // past a look at the client
			}
			left := time.Now()
			cl.c.Close() // close_notify, then FIN
			waitUntil(t, "the instance's connection closed", func() bool { return in.closed.Load() == 1 })
			if d := time.Since(left); d > 2*time.Second {
				t.Errorf("the instance's connection closed %v after the client left, want within about a second", d)
			}
			waitUntil(t, "nothing left", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
		})
	}
}

// TestTLSRequestPipelinedBehindAQuietStream: a request a TLS client sends
// while its stream is quiet is read here to tell it from a close_notify,
// and kept: it is answered once the stream ends, and the stream is not
// parked meanwhile (a pipelined request keeps the goroutine).
func TestTLSRequestPipelinedBehindAQuietStream(t *testing.T) {
	in := startStreamInstance(t)
	f := startTLSProxy(t, parkOpts(Options{}), Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	cl, _ := dialTLS(t, f)
	io.WriteString(cl.c, get("a.test", "/events"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/events over TLS: %v %v", resp, err)
	}
	expectEvent(t, cl, resp, "first")
	expectPipelinedBehindStream(t, f.srv, cl, resp, in.end(t), "a.test")
}

// expectPipelinedBehindStream sends the next request on cl while its
// stream (resp, whose instance's end is end) is quiet, and checks that the
// stream is not parked, and that the request is answered after it.
func expectPipelinedBehindStream(t *testing.T, srv *Server, cl *client, resp *http.Response, end *streamEnd, host string) {
	t.Helper()
	io.WriteString(cl.c, get(host, "/next"))
	time.Sleep(700 * time.Millisecond) // parkAfter is 50 ms; the wait looks every 250
	if n := srv.parker.count(); n != 0 {
		t.Fatalf("%d parked, want the stream with a request waiting not parked", n)
	}
	writeEvent(end, true, "second")
	expectEvent(t, cl, resp, "second")
	end.finish()
	expectBodyEnd(t, cl, resp)
	next, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatalf("the request sent during the stream: %v", err)
	}
	if body, _ := io.ReadAll(next.Body); string(body) != "ok /next" {
		t.Fatalf("the request sent during the stream: %q", body)
	}
}
