package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The end of a keep-alive response is flushed in the connection's next
// wait for the client (clientReader.Read, inside waitForRequest's Peek).
// When that flush times out (a client that stopped reading), Peek's error
// is a timeout, and with the park deadline in force waitForRequest takes
// it for an idle read's and parks the connection (parkconn.go's park: its
// writer, with the unsent end of the response, goes back to the pool). A
// request that comes before IdleTimeout is then served on a connection
// whose last response was cut short: the client reads the next response
// as the rest of the body of the one before. The window is from the
// flush's write deadline (renewed with deadlineSlack, so up to a slack
// early) to idleSince + IdleTimeout, the woken wait's read deadline. Since
// parking came (e84e49a) until 2026-12-04; before it, a
// flush that timed out closed the connection. Over TLS (d959a18) the
// same path parks a tls.Conn whose writes fail for good (crypto/tls keeps
// a write error): woken, it sends the next request to the instance and
// cannot answer it; and its socket is full (regress_tlsclose_test.go).

// stuckFlushBody is what stuckFlushInstance answers but /after with: a
// response that fits in the 16 KiB writer, so that its end is flushed in
// the connection's next wait.
var stuckFlushBody = strings.Repeat("x", 15000)

// stuckFlushInstance answers /after with "after" (and a note on after,
// when not nil), and anything else with stuckFlushBody.
func stuckFlushInstance(t *testing.T, after chan struct{}) *instance {
	body := stuckFlushBody
	return startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/after" {
			select {
			case after <- struct{}{}:
			default: // nil, or noted already
			}
			io.WriteString(w, "after")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
}

// stuckFlushOpts parks a connection idle for 10 ms, and ends an idle one
// after 2 s.
func stuckFlushOpts() Options {
	opts := Options{IdleTimeout: 2 * time.Second}
	opts.parkAfter = 10 * time.Millisecond
	return opts
}

func TestConnectionWhoseFlushTimedOutIsNotServedOn(t *testing.T) {
	body := stuckFlushBody
	after := make(chan struct{}, 1)
	in := stuckFlushInstance(t, after)
	opts := stuckFlushOpts()
	f := startProxy(t, opts, Route{Port: 1, Set: setOf(t, "a", in)})

attempts:
	for attempt := 1; attempt <= 2; attempt++ {
		nc := dialSmallRcvbuf(t, f.addr)
		asked := fillUntilStuck(t, f.srv, nc, "x", "/big", 0)
		// The client asks again, still reading nothing: the request waits
		// in the socket while the proxy's flush is blocked.
		if _, err := io.WriteString(nc, get("x", "/after")); err != nil {
			t.Fatal(err)
		}
		if !waitAfterOrClosed(f.srv, after, opts.IdleTimeout+time.Second) {
			// Closed when its flush timed out (right), or, with the code
			// before the fix, because the flush's deadline (renewed with a
			// slack) fell just at IdleTimeout: try again.
			t.Logf("attempt %d: the connection was closed, not served on", attempt)
			nc.Close()
			continue
		}
		// Now the client reads everything it was sent.
		br := bufio.NewReader(nc)
		for i := 0; ; i++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := string(b)
			if k := strings.Index(got, "HTTP/1.1"); k >= 0 {
				t.Fatalf("response %d (%d of its %d bytes, %v): its body holds the next response (%q at byte %d): "+
					"a connection whose flush timed out was parked and served on", i, len(got), len(body), err, got[k:min(len(got), k+40)], k)
			}
			if err != nil {
				t.Fatalf("response %d's body: %v", i, err)
			}
			switch {
			case got == "after" && i == asked:
				// Every response came whole: the proxy was slow to answer
				// (a loaded machine), not stuck in a flush. Again.
				t.Logf("attempt %d: the connection was not stuck after all", attempt)
				nc.Close()
				waitUntil(t, "the connection forgotten", func() bool { return f.srv.connCount() == 0 })
				continue attempts
			case got == "after":
				t.Fatalf("the request after a response whose flush timed out reached the instance and was answered on the same connection (after %d whole responses of %d)", i, asked)
			case got != body:
				t.Fatalf("response %d: %d bytes, want %d", i, len(got), len(body))
			}
		}
	}
}

// waitAfterOrClosed reports whether a request reached after before the
// server's only connection was forgotten (or d passed).
func waitAfterOrClosed(s *Server, after <-chan struct{}, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-after:
			return true
		case <-time.After(5 * time.Millisecond):
		}
		if s.connCount() == 0 {
			return false
		}
	}
	return false
}
