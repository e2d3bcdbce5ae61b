package proxy

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestH2ClientLeavingAQuietStream: a client that leaves its quiet stream
// (RST_STREAM: its request cancelled, or the body closed) is heard of
// while the stream waits for its instance without buffers: the
// instance's connection is closed, without the instance sending.
func TestH2ClientLeavingAQuietStream(t *testing.T) {
	for _, how := range []string{"cancel", "body closed"} {
		t.Run(how, func(t *testing.T) {
			in := startStreamInstance(t)
			f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "s", in.ln.Addr().String())})
			hc := f.client(true)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "https://a.test/events", nil)
			resp, err := hc.Do(req)
			if err != nil || resp.ProtoMajor != 2 {
				t.Fatalf("/events over HTTP/2: %v %v", resp, err)
			}
			first := make([]byte, len("data: first\n\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("first event: %q %v", first, err)
			}
			in.end(t)
			time.Sleep(300 * time.Millisecond) // quiet: past a look at the client
			if how == "cancel" {
				cancel()
			} else {
				resp.Body.Close()
			}
			waitUntil(t, "the instance's connection closed", func() bool { return in.closed.Load() == 1 })
		})
	}
}
