package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/sockpeek"
)

// Quiet streams parked (streampark.go): their goroutines end, and the
// instance's next bytes, its end, the client leaving, an upgrade's
// hand-over and Close take them up as before.

// streamInstance answers /events with an event stream, chunked, or up to
// the close for /events-close, and its first event; its end of each stream
// comes on ends, for a test to write more to, finish or close, and it
// counts the streams whose other end (the proxy) closed. Anything else it
// answers "ok PATH".
type streamInstance struct {
	*handInstance
	ends   chan *streamEnd
	closed atomic.Int64 // streams the proxy closed
}

// streamEnd is the instance's end of a stream.
type streamEnd struct {
	net.Conn
	done chan struct{}
}

// finish ends a chunked stream; the instance's connection goes on to its
// next request.
func (e *streamEnd) finish() {
	io.WriteString(e, "0\r\n\r\n")
	close(e.done)
}

func startStreamInstance(t *testing.T) *streamInstance {
	si := &streamInstance{ends: make(chan *streamEnd, 64)}
	si.handInstance = startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		switch req.URL.Path {
		case "/events":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
			writeEvent(c, true, "first")
		case "/events-close":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
			writeEvent(c, false, "first")
		default:
			body := "ok " + req.URL.Path
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			return true
		}
		e := &streamEnd{Conn: c, done: make(chan struct{})}
		si.ends <- e
		for {
			select {
			case <-e.done:
				return true
			case <-time.After(5 * time.Millisecond):
			}
			if st, err := peekConn(c); err != nil || st != sockpeek.Quiet {
				if err == nil && st == sockpeek.Closed {
					si.closed.Add(1) // the proxy's end closed
				}
				return false
			}
		}
	})
	return si
}

// peekConn looks at what waits in c's socket, without reading it.
func peekConn(c net.Conn) (sockpeek.State, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var st sockpeek.State
	if err := raw.Control(func(fd uintptr) { st = sockpeek.FD(fd) }); err != nil {
		return 0, err
	}
	return st, nil
}

// writeEvent writes one event, as a chunk or as it is.
func writeEvent(w io.Writer, chunked bool, data string) {
	ev := "data: " + data + "\n\n"
	if chunked {
		fmt.Fprintf(w, "%x\r\n%s\r\n", len(ev), ev)
		return
	}
	io.WriteString(w, ev)
}

// end is the instance's end of the next stream opened.
func (si *streamInstance) end(t *testing.T) *streamEnd {
	t.Helper()
	return within5s(t, si.ends, "a stream reached the instance")
}

// openEvents asks addr for path's event stream and reads its first event.
func openEvents(t *testing.T, addr, path string) (*client, *http.Response) {
	t.Helper()
	return openEventsOn(t, dial(t, addr), "x", path)
}

// openTLSEvents is openEvents over TLS (HTTP/1.1), to f's a.test.
func openTLSEvents(t *testing.T, f *tlsFixture, path string) (*client, *http.Response) {
	t.Helper()
	cl, _ := dialTLS(t, f)
	return openEventsOn(t, cl, "a.test", path)
}

// openEventsOn asks for path on cl, for host, and reads the stream's head
// and first event.
func openEventsOn(t *testing.T, cl *client, host, path string) (*client, *http.Response) {
	t.Helper()
	io.WriteString(cl.c, get(host, path))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %v %v", path, resp, err)
	}
	expectEvent(t, cl, resp, "first")
	return cl, resp
}

// expectEvent reads the stream's next event, within 2 s.
func expectEvent(t *testing.T, cl *client, resp *http.Response, data string) {
	t.Helper()
	want := "data: " + data + "\n\n"
	got := make([]byte, len(want))
	cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != want {
		t.Fatalf("event: %q %v, want %q", got, err, want)
	}
}

// expectBodyEnd reads the end of the stream's body, within 2 s.
func expectBodyEnd(t *testing.T, cl *client, resp *http.Response) {
	t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) > 0 {
		t.Fatalf("the end of the stream: %q %v", rest, err)
	}
}

func TestQuietStreamsAreParkedAndTakenUp(t *testing.T) {
	for _, path := range []string{"/events", "/events-close"} {
		t.Run(path, func(t *testing.T) {
			chunked := path == "/events"
			in := startStreamInstance(t)
			f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
			const n = 6
			var cls [n]*client
			var resps [n]*http.Response
			var ends [n]*streamEnd
			// Counted before: on a loaded machine the first streams may
			// park before the last is open.
			before := runtime.NumGoroutine()
			for i := range cls {
				cls[i], resps[i] = openEvents(t, f.addr, path)
				ends[i] = in.end(t)
			}
			waitParked(t, f.srv, n)
			// A stream had a goroutine here (and one in the instance);
			// parked, none (the parker has one, and its trim may run).
			waitUntil(t, "the streams' goroutines gone", func() bool { return runtime.NumGoroutine() <= before+n+2 })

			// The instance's next events: taken up, and parked again.
			for round := range 3 {
				writeEvent(ends[0], chunked, fmt.Sprint("round ", round))
				expectEvent(t, cls[0], resps[0], fmt.Sprint("round ", round))
				waitParked(t, f.srv, n)
			}
			// Parked in the middle of an event (a chunk's data, or the
			// bytes themselves): the rest comes whole.
			ev := "data: split\n\n"
			if chunked {
				fmt.Fprintf(ends[1], "%x\r\n%s", len(ev), ev[:5])
			} else {
				io.WriteString(ends[1], ev[:5])
			}
			cls[1].c.SetReadDeadline(time.Now().Add(2 * time.Second))
			head := make([]byte, 5)
			if _, err := io.ReadFull(resps[1].Body, head); err != nil || string(head) != ev[:5] {
				t.Fatalf("the first part of the event: %q %v", head, err)
			}
			waitParked(t, f.srv, n)
			if chunked {
				io.WriteString(ends[1], ev[5:]+"\r\n")
			} else {
				io.WriteString(ends[1], ev[5:])
			}
			cls[1].c.SetReadDeadline(time.Now().Add(2 * time.Second)) // from now: waitParked may have taken a while
			rest := make([]byte, len(ev)-5)
			if _, err := io.ReadFull(resps[1].Body, rest); err != nil || string(rest) != ev[5:] {
				t.Fatalf("the rest of the event: %q %v", rest, err)
			}

			// The instance ends a parked stream: it ends for the client;
			// a chunked one leaves the connection for the next request.
			if chunked {
				ends[2].finish()
				expectBodyEnd(t, cls[2], resps[2])
				if _, body, err := cls[2].do(get("x", "/next")); err != nil || body != "ok /next" {
					t.Fatalf("the request after a parked stream: %q %v", body, err)
				}
				// It leaves: idle, its connection would park in its turn,
				// and be counted with the streams below by a machine slow
				// to get there.
				cls[2].c.Close()
			} else {
				ends[2].Close()
				expectBodyEnd(t, cls[2], resps[2])
				expectClosed(t, cls[2], "a stream up to the close, ended")
			}

			// The client leaves a parked stream: the instance's connection
			// closes too.
			cls[3].c.Close()
			waitUntil(t, "the instance's end of the stream closed", func() bool { return in.closed.Load() == 1 })
			waitUntil(t, "the others left, parked", func() bool { return f.srv.parker.count() == n-2 })
			writeEvent(ends[4], chunked, "still")
			expectEvent(t, cls[4], resps[4], "still")
		})
	}
}

// TestStreamWithTheClientsNextRequestIsNotParked: a stream whose client
// sent its next request meanwhile (pipelined) keeps its goroutine, and
// the request is answered once the stream ends.
func TestStreamWithTheClientsNextRequestIsNotParked(t *testing.T) {
	in := startStreamInstance(t)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	cl, resp := openEvents(t, f.addr, "/events")
	expectPipelinedBehindStream(t, f.srv, cl, resp, in.end(t), "x")
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

// TestParkedStreamIsPassed: at an upgrade, a parked stream is passed as it
// is, from where it stands; the taking process parks it in turn, and
// relays the rest. One whose passing fails goes on here until
// PassConnections' time is up.
func TestParkedStreamIsPassed(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			in := startStreamInstance(t)
			up := startUpgradePair(t, in.ln.Addr().String())
			old := up.old
			cl, resp := openEvents(t, old.addr, "/events")
			end := in.end(t)
			waitParked(t, old.srv, 1)

			endPass := up.passAll(t, fail)
			if !fail {
				waitUntil(t, "the stream passed", func() bool { return old.srv.PassStats().Streams == 1 })
				waitUntil(t, "the old process done with it", func() bool { return old.srv.connCount() == 0 })
				waitParked(t, up.next.srv, 1) // quiet in the new one too
			}
			writeEvent(end, true, "after")
			expectEvent(t, cl, resp, "after")
			if fail {
				// Passed by the parker's taker, or, woken by the event
				// first, by its own goroutine at its next wait.
				waitUntil(t, "passing it failed", func() bool { return old.srv.PassStats().Failed == 1 })
				if st := old.srv.PassStats(); st.Streams != 0 {
					t.Errorf("PassStats %+v, want none passed", st)
				}
				endPass() // PassConnections' time is up: Close ends what is left
				cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadAll(resp.Body); err == nil {
					t.Fatal("the stream kept here ended cleanly at Close, want it cut")
				}
				waitUntil(t, "the instance's end closed", func() bool { return in.closed.Load() == 1 })
				return
			}
			end.finish()
			expectBodyEnd(t, cl, resp)
			if _, body, err := cl.do(get("x", "/next")); err != nil || body != "ok /next" {
				t.Fatalf("the request after the passed stream: %q %v", body, err)
			}
		})
	}
}

// TestParkedStreamsAtShutdownAndClose: a stop's Shutdown leaves a parked
// stream be, as one not parked, and the end of its grace closes it, both
// ends; so does Close. Its access log line is written once, at its end,
// with every byte sent.
func TestParkedStreamsAtShutdownAndClose(t *testing.T) {
	for _, how := range []string{"shutdown", "close"} {
		t.Run(how, func(t *testing.T) {
			log, path := openAccessLog(t)
			in := startStreamInstance(t)
			f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "web", in.ln.Addr().String()), AccessLog: log})
			cl, resp := openEvents(t, f.addr, "/events")
			end := in.end(t)
			waitParked(t, f.srv, 1)
			writeEvent(end, true, "second")
			expectEvent(t, cl, resp, "second")
			waitParked(t, f.srv, 1)
			if how == "shutdown" {
				// The grace ends when the test says (after the event), not
				// after a time a loaded machine may take to relay it.
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- f.srv.Shutdown(ctx) }()
				time.Sleep(100 * time.Millisecond)
				writeEvent(end, true, "during the grace")
				expectEvent(t, cl, resp, "during the grace")
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("Shutdown: %v, want its context's end", err)
				}
			} else {
				f.srv.Close()
			}
			cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(resp.Body); err == nil {
				t.Fatal("the stream ended cleanly, want it cut")
			}
			waitUntil(t, "the instance's end closed", func() bool { return in.closed.Load() == 1 })
			waitUntil(t, "nothing left", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
			expectOneLogLine(t, log, path, `"GET /events HTTP/1.1" 200 `)
		})
	}
}

// TestParkedStreamWhosePassFailedHasItsGraceAfterIt: a parked stream whose
// passing fails goes on here, and the grace for the client's next request
// runs from the stream's end, as for one not parked: a request sent right
// after a stream that outlasted the grace is answered (found by review).
func TestParkedStreamWhosePassFailedHasItsGraceAfterIt(t *testing.T) {
	for _, park := range []time.Duration{-1, 50 * time.Millisecond} {
		t.Run(fmt.Sprint("parkAfter=", park), func(t *testing.T) {
			in := startStreamInstance(t)
			// The grace is the client's time to send its next request
			// after the stream: long enough for a loaded machine.
			f := startProxy(t, Options{parkAfter: park, ShutdownGrace: 600 * time.Millisecond},
				Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
			cl, resp := openEvents(t, f.addr, "/events")
			end := in.end(t)
			if park > 0 {
				waitParked(t, f.srv, 1)
			} else {
				time.Sleep(300 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go f.srv.PassConnections(ctx, func(*Handover) error { return errors.New("refused") })
			waitUntil(t, "passing it failed", func() bool { return f.srv.PassStats().Failed == 1 })
			time.Sleep(800 * time.Millisecond) // the stream outlasts the grace from the failure
			end.finish()
			expectBodyEnd(t, cl, resp)
			if _, body, err := cl.do(get("x", "/next")); err != nil || body != "ok /next" {
				t.Fatalf("the request right after the stream: %q %v", body, err)
			}
		})
	}
}

// TestWokenStreamReadsBeforeParkingAgain: a parked stream taken up by its
// instance's next event relays it, then parks once more when quiet: one
// parking an event, not a second one before it reads (the watch deadline
// left from before it parked has passed; it is no wait).
func TestWokenStreamReadsBeforeParkingAgain(t *testing.T) {
	in := startStreamInstance(t)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	cl, resp := openEvents(t, f.addr, "/events")
	end := in.end(t)
	waitParked(t, f.srv, 1)
	seq := func() uint32 {
		f.srv.parker.mu.Lock()
		defer f.srv.parker.mu.Unlock()
		return f.srv.parker.seq
	}
	for i := range 3 {
		before := seq()
		writeEvent(end, true, fmt.Sprint("event ", i))
		expectEvent(t, cl, resp, fmt.Sprint("event ", i))
		time.Sleep(400 * time.Millisecond) // parkAfter 50 ms, a look every 250
		waitParked(t, f.srv, 1)
		if n := seq() - before; n != 1 {
			t.Fatalf("event %d: parked %d times, want once", i, n)
		}
	}
}

// TestTLSStreamsAreParked: a stream over TLS (HTTP/1.1) is parked as a
// plain one, its tls.Conn kept, and taken up by the instance's events and
// end; at an upgrade it is not passed (a TLS connection's state is this
// process's), parked or not: it goes on here until PassConnections' time
// is up.
func TestTLSStreamsAreParked(t *testing.T) {
	in := startStreamInstance(t)
	f := startTLSProxy(t, parkOpts(Options{}), Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	open := func() (*client, *http.Response, *streamEnd) {
		cl, resp := openTLSEvents(t, f, "/events")
		return cl, resp, in.end(t)
	}
	cl, resp, end := open()
	waitParked(t, f.srv, 1)
	for round := range 2 {
		writeEvent(end, true, fmt.Sprint("round ", round))
		expectEvent(t, cl, resp, fmt.Sprint("round ", round))
		waitParked(t, f.srv, 1)
	}
	end.finish()
	expectBodyEnd(t, cl, resp)
	if _, body, err := cl.do(get("a.test", "/next")); err != nil || body != "ok /next" {
		t.Fatalf("the request after a parked TLS stream: %q %v", body, err)
	}

	cl, resp, end = open()
	waitParked(t, f.srv, 2) // the stream, and the first connection, idle
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	passed := make(chan struct{})
	go func() {
		f.srv.PassConnections(ctx, func(*Handover) error { calls.Add(1); return errors.New("not expected") })
		close(passed)
	}()
	time.Sleep(100 * time.Millisecond)
	writeEvent(end, true, "during the hand-over")
	expectEvent(t, cl, resp, "during the hand-over")
	cancel()
	<-passed
	cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("the TLS stream ended cleanly at Close, want it cut")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("PassConnections offered %d connections to pass, want none (TLS)", n)
	}
	waitUntil(t, "the instance's end closed", func() bool { return in.closed.Load() == 1 })
}
