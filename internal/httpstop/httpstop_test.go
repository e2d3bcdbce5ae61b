package httpstop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// serve starts a Server on 127.0.0.1:0 with h; accepted receives each
// connection as net/http reports it new.
func serve(t *testing.T, h http.Handler) (s *Server, addr string, accepted chan net.Conn, served chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = make(chan net.Conn, 16)
	srv := &http.Server{Handler: h, ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			accepted <- c
		}
	}}
	s = New(srv)
	served = make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.srv.Close()
		<-s.served
	})
	return s, ln.Addr().String(), accepted, served
}

func ok(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

// get sends a GET on c and reads the answer's status line and whether it
// said Connection: close ("close"; "" if not).
func get(c net.Conn, path string) (status, connection string, err error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path); err != nil {
		return "", "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.Close {
		connection = "close"
	}
	return resp.Status, connection, nil
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not within 5 s", what)
		panic("unreachable")
	}
}

// A connection accepted before the stop, whose request arrives after it
// began, is answered: net/http's Shutdown closes it unanswered.
func TestStopAnswersARequestThatArrivesAfterIt(t *testing.T) {
	s, addr, accepted, served := serve(t, http.HandlerFunc(ok))
	c := dial(t, addr)
	within(t, accepted, "the connection accepted")

	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	within(t, served, "Serve returned")
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v with an accepted connection unanswered", err)
	case <-time.After(50 * time.Millisecond):
	}

	status, conn, err := get(c, "/late")
	if err != nil || status != "200 OK" || conn != "close" {
		t.Fatalf("the late request: %q Connection %q, %v; want 200 OK, Connection close", status, conn, err)
	}
	if err := within(t, stopped, "Stop after the answer"); err != nil {
		t.Fatalf("Stop: %v, want nil", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener still accepts after Stop")
	}
}

// An idle keep-alive connection is closed at StopAccepting; a request in
// progress is answered, with Connection: close, and its connection closed.
func TestStopAcceptingClosesIdleAndFinishesBusy(t *testing.T) {
	release := make(chan struct{})
	s, addr, accepted, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		ok(w, r)
	}))
	idle := dial(t, addr)
	within(t, accepted, "the idle connection accepted")
	if status, _, err := get(idle, "/"); err != nil || status != "200 OK" {
		t.Fatalf("first request: %q %v", status, err)
	}
	busy := dial(t, addr)
	within(t, accepted, "the busy connection accepted")
	answered := make(chan error, 1)
	go func() {
		status, conn, err := get(busy, "/slow")
		if err == nil && (status != "200 OK" || conn != "close") {
			err = fmt.Errorf("%q Connection %q, want 200 OK, Connection close", status, conn)
		}
		answered <- err
	}()
	time.Sleep(50 * time.Millisecond) // the request reaches the handler

	s.StopAccepting()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("the idle connection: read %d, %v; want it closed (EOF)", n, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	close(release)
	if err := within(t, answered, "the busy request answered"); err != nil {
		t.Errorf("the busy request: %v", err)
	}
	if err := within(t, stopped, "Stop"); err != nil {
		t.Errorf("Stop: %v, want nil", err)
	}
}

// A client that connects and sends nothing holds Stop until its context
// ends; then its connection is closed and Stop says why.
func TestStopEndsWithItsContext(t *testing.T) {
	s, addr, accepted, _ := serve(t, http.HandlerFunc(ok))
	c := dial(t, addr)
	within(t, accepted, "the connection accepted")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop: %v, want %v", err, context.DeadlineExceeded)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the silent connection after Stop: %v, want EOF", err)
	}
}

// Stop before Serve, twice, and StopAccepting after: Serve then closes its
// listener and returns nil.
func TestStopBeforeServe(t *testing.T) {
	s := New(&http.Server{Handler: http.HandlerFunc(ok)})
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Serve: %v", err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("Stop again: %v", err)
	}
	s.StopAccepting()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err != nil {
		t.Errorf("Serve after Stop: %v, want nil", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener given to Serve after Stop still accepts")
	}
}

// The hook New found on the server still sees every state.
func TestTheServersOwnHookStillRuns(t *testing.T) {
	var closed atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(ok), ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed.Add(1)
		}
	}}
	s := New(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	c := dial(t, ln.Addr().String())
	if status, _, err := get(c, "/"); err != nil || status != "200 OK" {
		t.Fatalf("GET: %q %v", status, err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n := closed.Load(); n != 1 {
		t.Errorf("the server's own hook saw %d closed connections, want 1", n)
	}
}

// The hand-over as at an upgrade: two servers accept on one socket and the
// old one stops while clients connect and ask, each on a new connection
// (as a load balancer's checks do), again and again. Every request is
// answered: whichever server accepted it answers it.
func TestHandOverOnASharedSocketLosesNoRequest(t *testing.T) {
	socket := tcptest.Shared(t)
	start := func() func(context.Context) error {
		s := New(&http.Server{Handler: http.HandlerFunc(ok)})
		go s.Serve(socket.Listener(t))
		return s.Stop
	}
	clients := tcptest.StartClients(t, 4, func() error {
		c, err := net.Dial("tcp", socket.Addr)
		if err != nil {
			return err
		}
		return tcptest.GetOK(c, "t", "/health")
	})
	const handOvers = 30
	stopLast := tcptest.HandOvers(t, handOvers, 10*time.Millisecond, start)
	got := clients.Stop()
	stopLast(context.Background())
	t.Logf("%d hand-overs: %v", handOvers, got)
	if got.Failed > 0 || got.Asked == 0 {
		t.Errorf("through %d hand-overs: %v", handOvers, got)
	}
}

// A connection that has waited more than 5 s for its first request is
// not idle: StopAccepting leaves it, and its request is answered.
// (net/http's SetKeepAlivesEnabled(false) closed it.)
func TestStopAnswersAConnectionThatWaitedLong(t *testing.T) {
	s, addr, accepted, _ := serve(t, http.HandlerFunc(ok))
	c := dial(t, addr)
	within(t, accepted, "the connection accepted")
	time.Sleep(5500 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- s.Stop(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	status, conn, err := get(c, "/late")
	if err != nil || status != "200 OK" || conn != "close" {
		t.Errorf("a request 5.5 s after its connection, sent once Stop began: %q Connection %q, %v; want 200 OK, Connection close", status, conn, err)
	}
	if err := within(t, stopped, "Stop"); err != nil {
		t.Errorf("Stop: %v, want nil", err)
	}
}

// A handler that outlives Stop's context holds its connection after
// Close; a second Stop (the daemon stops the admin listener twice at an
// upgrade) returns at once, with the first one's error.
func TestASecondStopAfterOneOutOfTimeReturnsAtOnce(t *testing.T) {
	release := make(chan struct{})
	s, addr, accepted, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // ignores r.Context()
		ok(w, r)
	}))
	defer close(release)
	c := dial(t, addr)
	within(t, accepted, "the connection accepted")
	go get(c, "/stuck")
	time.Sleep(50 * time.Millisecond)
	for i, want := range []time.Duration{200 * time.Millisecond, 0} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		began := time.Now()
		err := s.Stop(ctx)
		took := time.Since(began)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || took < want || took > want+time.Second {
			t.Errorf("Stop #%d: %v after %v; want %v after about %v", i+1, err, took, context.DeadlineExceeded, want)
		}
	}
}

// Handlers still flush (http.Flusher) and hijack (through
// http.ResponseController); a hijacked connection is the handler's, and
// Stop does not wait for it.
func TestHandlersFlushAndHijack(t *testing.T) {
	hijacked := make(chan net.Conn, 1)
	s, addr, accepted, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hijack" {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			hijacked <- c
			return
		}
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("the ResponseWriter is no http.Flusher")
			return
		}
		io.WriteString(w, "ok")
		f.Flush()
	}))
	c := dial(t, addr)
	within(t, accepted, "the connection accepted")
	if status, _, err := get(c, "/flush"); err != nil || status != "200 OK" {
		t.Fatalf("GET /flush: %q %v", status, err)
	}
	h := dial(t, addr)
	within(t, accepted, "the second connection accepted")
	h.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(h, "GET /hijack HTTP/1.1\r\nHost: t\r\n\r\n")
	hc := within(t, hijacked, "the hijack")
	defer hc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop with a hijacked connection open: %v, want nil at once", err)
	}
}
