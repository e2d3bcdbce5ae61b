package proxy

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// A response whose head went out keep-alive before a shutdown began, and
// whose end came after the shutdown's grace had run out, told its client
// nothing: over TLS at an upgrade (a TLS connection is not passed), and on
// any connection at a stop. The connection was closed the moment the
// response ended, and a client that sent its next request then met EOF
// (found by an adversarial load: 5 of 5 TLS connections streaming across a
// SIGHUP). Such a connection now gets ShutdownGrace from its response's
// end, as one kept here mid-response does: its next request is answered,
// with Connection: close.
func TestAResponseAcrossAShutdownsGraceGetsOneAfterIt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secure bool
		pass   bool // PassConnections (an upgrade), or Shutdown (a stop)
	}{
		{"TLS at an upgrade", true, true},
		{"TLS at a stop", true, false},
		{"plain at a stop", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					w.Header().Set("Content-Length", "5")
					w.WriteHeader(200)
					w.(http.Flusher).Flush()
					<-release
				}
				io.WriteString(w, "hello")
			})
			grace := 200 * time.Millisecond
			f := startTLSProxy(t, Options{ShutdownGrace: grace},
				Route{Port: 1, Set: setOf(t, "s", in)}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
			cl, host := dial(t, f.addr), "x"
			if tc.secure {
				cl, _ = dialTLS(t, f)
				host = "a.test"
			}
			// Another connection mid-request keeps the shutdown from
			// ending before the slow response does.
			keeper := dial(t, f.addr)
			io.WriteString(keeper.c, "GET /keep HTTP/1.1\r\nHost: x\r\n")

			io.WriteString(cl.c, get(host, "/slow"))
			resp, err := http.ReadResponse(cl.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Close {
				t.Fatal("Connection: close before the shutdown")
			}
			done := make(chan error, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			go func() {
				if tc.pass {
					next := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in)})
					var passed atomic.Int64
					done <- f.srv.PassConnections(ctx, passTo(next.srv, &passed))
				} else {
					done <- f.srv.Shutdown(ctx)
				}
			}()
			time.Sleep(2 * grace) // the grace is over
			close(release)
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatalf("the response across the shutdown: %v", err)
			}
			resp.Body.Close()
			time.Sleep(20 * time.Millisecond) // a paced client's pause
			next, body, err := cl.do(get(host, "/next"))
			if err != nil {
				t.Fatalf("the next request on a connection whose last answer said keep-alive: %v", err)
			}
			if body != "hello" || !next.Close {
				t.Errorf("its answer: %q close=%v, want hello with Connection: close", body, next.Close)
			}
			io.WriteString(keeper.c, "\r\n")
			keeper.br.ReadByte()
			keeper.c.Close()
			waitReturned(t, done, "the shutdown")
		})
	}
}

// The same for a client still reading a big answer when the proxy has
// written the last of it into the socket: the grace counts from when the
// client has read it all (the socket's send queue acknowledged), not from
// the proxy's last write, which a slow reader follows by seconds.
func TestASlowReadersGraceCountsFromItsRead(t *testing.T) {
	const size = 16 << 20
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			chunk := make([]byte, 64<<10)
			for n := 0; n < size; n += len(chunk) {
				w.Write(chunk)
			}
			return
		}
		io.WriteString(w, "hello")
	})
	grace := 200 * time.Millisecond
	f := startTLSProxy(t, Options{ShutdownGrace: grace}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
	cl, _ := dialTLS(t, f)
	io.WriteString(cl.c, get("a.test", "/big"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.srv.Shutdown(context.Background()) }()
	// Read slowly until the proxy has written the end, then not at all for
	// twice the grace, then the rest.
	buf := make([]byte, 16<<10)
	read := 0
	for f.srv.InFlight() > 0 {
		n, err := resp.Body.Read(buf)
		read += n
		if err != nil {
			t.Fatalf("reading the answer: %v after %d bytes", err, read)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if read >= size {
		t.Skip("the whole answer was read before the proxy wrote its end: nothing left to read slowly")
	}
	time.Sleep(2 * grace)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || read+len(rest) != size {
		t.Fatalf("the rest of the answer: %d of %d bytes, %v", read+len(rest), size, err)
	}
	next, body, err := cl.do(get("a.test", "/next"))
	if err != nil {
		t.Fatalf("the next request, sent as the answer was read (%d bytes were left when the proxy wrote its end): %v", size-read, err)
	}
	if body != "hello" || !next.Close {
		t.Errorf("its answer: %q close=%v, want hello with Connection: close", body, next.Close)
	}
	waitReturned(t, done, "the shutdown")
}
