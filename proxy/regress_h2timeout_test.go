package proxy

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// A client that stalls mid-body: HTTP/1.1 answers 408 after BodyTimeout;
// the bridge has no such bound (the stream, and an instance connection,
// are held as long as the client likes).
func TestRegressH2BodyTimeout(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	f := startTLSProxy(t, Options{BodyTimeout: 300 * time.Millisecond}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
	for _, h2 := range []bool{false, true} {
		pr, pw := io.Pipe()
		go func() { pw.Write([]byte("start")) }() // then nothing
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "POST", "https://a.test/", pr)
		start := time.Now()
		resp, err := f.client(h2).Do(req)
		cancel()
		pw.Close()
		if err != nil {
			t.Errorf("h2=%v: no answer after %v: %v", h2, time.Since(start).Round(time.Millisecond), err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 408 {
			t.Errorf("h2=%v: %d, want 408", h2, resp.StatusCode)
		}
	}
}
