package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
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
			in := startInstance(t, "a", heldHello(release))
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
// the proxy's last write, which a slow reader follows by seconds (here
// 0.5 s or more, against a grace of 0.2).
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
	// Read slowly, on past the proxy's writing of the end, for longer
	// than the grace.
	buf := make([]byte, 16<<10)
	read := 0
	var ended time.Time
	for read < size {
		if ended.IsZero() && f.srv.InFlight() == 0 {
			ended = time.Now()
		}
		n, err := resp.Body.Read(buf)
		read += n
		if err != nil && !(err == io.EOF && read == size) {
			t.Fatalf("reading the answer: %v after %d bytes", err, read)
		}
		time.Sleep(3 * time.Millisecond)
	}
	resp.Body.Close()
	if ended.IsZero() || time.Since(ended) < 2*grace {
		t.Skipf("the answer was read within %v of the proxy's writing its end: nothing read slowly", 2*grace)
	}
	left := time.Since(ended)
	next, body, err := cl.do(get("a.test", "/next"))
	if err != nil {
		t.Fatalf("the next request, sent as the answer was read (%v after the proxy wrote its end): %v", left, err)
	}
	if body != "hello" || !next.Close {
		t.Errorf("its answer: %q close=%v, want hello with Connection: close", body, next.Close)
	}
	waitReturned(t, done, "the shutdown")
}

// A client that stops reading (or is gone) holds its grace no longer than
// one that is idle: its answer's bytes stay unacknowledged, and a grace
// that waited for them to be read would hold a stop, or an upgrade's old
// process, until its deadline (found by a review: the whole 4 s here).
// Read nothing for ShutdownGrace, it is closed.
func TestAClientThatStopsReadingHoldsNoShutdown(t *testing.T) {
	for _, size := range []int{32 << 10, 256 << 10} {
		release := make(chan struct{})
		in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-release
			w.Write(make([]byte, size))
		})
		grace := 200 * time.Millisecond
		f := startProxy(t, Options{ShutdownGrace: grace}, Route{Port: 1, Set: setOf(t, "s", in)})
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1) })
			return nil
		}}
		c, err := d.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, get("x", "/slow"))
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 16), nil)
		if err != nil || resp.Close {
			t.Fatal(err, resp.Close)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		done := make(chan error, 1)
		began := time.Now()
		go func() { done <- f.srv.Shutdown(ctx) }()
		time.Sleep(2 * grace)
		close(release) // the body goes out after the grace; the client reads no more
		err = <-done
		if took := time.Since(began); err != nil || took > 2*time.Second {
			t.Fatalf("%d bytes: a client that stopped reading held the stop for %v (%v); want about %v", size, took, err, 4*grace)
		}
	}
}
