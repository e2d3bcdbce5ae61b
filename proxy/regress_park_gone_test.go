package proxy

import (
	"net/http"
	"testing"
	"time"
)

// TestClientLeavingQuietStreamNoticedAfterParkAfter: a client that
// leaves a response stream while its instance is quiet is noticed within
// about WatchEvery (upstream.WatchClient → conn.Gone), however long the
// request has been going. conn.Gone peeks with RawConn.Read, which fails at
// once once the client socket's read deadline has passed; that deadline is
// still the parkAfter one (≤ 2 s) set by waitForRequest when the head came
// in one read, where before parking it was IdleTimeout.
func TestClientLeavingQuietStreamNoticedAfterParkAfter(t *testing.T) {
	testQuietStreamClientLeaves(t, parkOpts(Options{IdleTimeout: 30 * time.Second}), 400*time.Millisecond)
}

// TestClientLeavingQuietStreamDefaultParkAfter: the same with the
// default parkAfter (2 s): an SSE client that leaves 2.5 s into a quiet
// stream is never noticed (at HEAD, without parking, this passes; it fails
// there only past IdleTimeout, 75 s by default).
func TestClientLeavingQuietStreamDefaultParkAfter(t *testing.T) {
	testQuietStreamClientLeaves(t, Options{IdleTimeout: 30 * time.Second}, 2500*time.Millisecond)
}

func testQuietStreamClientLeaves(t *testing.T, opts Options, after time.Duration) {
	cancelled := make(chan time.Time, 1)
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			cancelled <- time.Now()
		case <-time.After(8 * time.Second):
		}
	})
	f := startProxy(t, opts, Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	if _, err := cl.c.Write([]byte(get("x", "/events"))); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The stream has gone on for longer than parkAfter (50 ms here, 2 s by
	// default), not IdleTimeout.
	time.Sleep(after)
	left := time.Now()
	cl.c.Close()
	endedSoon(t, cancelled, left)
}
