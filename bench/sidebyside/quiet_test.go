package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"smoothserve/internal/sockpeek"
)

// openIdleAs of idleTunnel holds WebSockets a server echoes on, as the demo's
// /ws does, and counts as failed those of a server that answers the
// upgrade with anything but a 101 or echoes wrong.
func TestOpenIdleWebSockets(t *testing.T) {
	echo := func(prefix string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/ws" {
				http.NotFound(w, r)
				return
			}
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), websocket.MessageText, append([]byte(prefix), msg...))
			c.Read(r.Context()) // until the client goes
		}
	}
	srv := httptest.NewServer(echo("echo: "))
	t.Cleanup(srv.Close)
	wrong := httptest.NewServer(echo("eh: "))
	t.Cleanup(wrong.Close)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(plain.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	conns, failed, err := openIdleAs(ctx, srv.Listener.Addr().String(), 40, idleSources(40), nil, idleTunnel)
	if len(conns) != 40 || failed != 0 || err != nil {
		t.Fatalf("openIdleAs(ws) = %d held, %d failed, %v; want 40, 0, nil", len(conns), failed, err)
	}
	t.Cleanup(func() { closeIdle(conns) })
	if st := peek(conns[0]); st != sockpeek.Quiet {
		t.Fatalf("a held WebSocket: %v, want quiet", st)
	}
	for _, bad := range []struct {
		srv  *httptest.Server
		want string
	}{{wrong, `the echo "eh: hi"`}, {plain, "200 OK, want 101"}} {
		got, failed, err := openIdleAs(ctx, bad.srv.Listener.Addr().String(), 3, idleSources(3), nil, idleTunnel)
		if len(got) != 0 || failed != 3 || err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("openIdleAs(ws) = %d held, %d failed, %v; want 0, 3, an error naming %s", len(got), failed, err, bad.want)
		}
	}
}

// openIdleAs of idleStream holds event streams once their first event
// came, and counts as failed the answers that are not one.
func TestOpenIdleStreams(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" || r.URL.Query().Get("ms") != "60000" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "id: 1\ndata: event 1/2\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "id: 1\n\n") }))
	t.Cleanup(plain.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conns, failed, err := openIdleAs(ctx, srv.Listener.Addr().String(), 40, idleSources(40), nil, idleStream)
	if len(conns) != 40 || failed != 0 || err != nil {
		t.Fatalf("openIdleAs(stream) = %d held, %d failed, %v; want 40, 0, nil", len(conns), failed, err)
	}
	t.Cleanup(func() { closeIdle(conns) })
	got, failed, err := openIdleAs(ctx, plain.Listener.Addr().String(), 3, idleSources(3), nil, idleStream)
	if len(got) != 0 || failed != 3 || err == nil || !strings.Contains(err.Error(), "want 200, chunked") {
		t.Errorf("openIdleAs(stream) of a length-framed answer = %d held, %d failed, %v; want 0, 3, an error naming the framing", len(got), failed, err)
	}
}
