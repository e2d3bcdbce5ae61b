package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A streamed response waits for its instance with the client's buffers
// back in their pools (relay.go's awaitBody): what the client sends
// meanwhile (its next request, pipelined) waits in the socket and is
// served after the stream, and every event goes out as it comes.
func TestQuietStreamServesWhatTheClientSentMeanwhile(t *testing.T) {
	for _, framing := range []string{"chunked", "close"} {
		t.Run(framing, func(t *testing.T) {
			in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/events" {
					io.WriteString(w, "a "+r.URL.Path)
					return
				}
				if framing == "close" {
					w.Header().Set("Connection", "close") // Go's server then ends the body with the close
				}
				w.Header().Set("Content-Type", "text/event-stream")
				for i := range 3 {
					if i > 0 {
						time.Sleep(80 * time.Millisecond)
					}
					io.WriteString(w, "data: "+strings.Repeat("x", i+1)+"\n\n")
					http.NewResponseController(w).Flush()
				}
			})
			f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in)})
			cl := dial(t, f.addr)
			io.WriteString(cl.c, get("x", "/events"))
			resp, err := http.ReadResponse(cl.br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("stream: %v %v", resp, err)
			}
			first := make([]byte, len("data: x\n\n"))
			cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: x\n\n" {
				t.Fatalf("first event: %q %v", first, err)
			}
			// The client's next request, while the stream is quiet.
			io.WriteString(cl.c, get("x", "/next"))
			rest, err := io.ReadAll(resp.Body)
			if want := "data: xx\n\ndata: xxx\n\n"; string(rest) != want || err != nil {
				t.Fatalf("the rest of the stream: %q %v, want %q", rest, err, want)
			}
			if framing == "close" {
				return // the connection ends with the body
			}
			next, err := http.ReadResponse(cl.br, nil)
			if err != nil {
				t.Fatalf("the request sent during the stream: %v", err)
			}
			body, _ := io.ReadAll(next.Body)
			if string(body) != "a /next" {
				t.Fatalf("the request sent during the stream: %q, want %q", body, "a /next")
			}
		})
	}
}
