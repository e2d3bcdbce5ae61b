package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/accesslog"
	"smoothserve/internal/syncbuf"
	"smoothserve/upstream"
)

// crashingSlots is a service whose instances die of a poisoned request:
// each closes the connection unanswered, leaves rotation (the supervisor
// saw it die) and is replaced a moment later, as the supervisor restarts
// a crashed instance. Other requests are answered.
type crashingSlots struct {
	t      *testing.T
	set    *upstream.Set
	deaths atomic.Int64
	mu     sync.Mutex
	starts int
}

func newCrashingSlots(t *testing.T, n int) *crashingSlots {
	cs := &crashingSlots{t: t, set: upstream.NewSet("s", 5*time.Second)}
	for slot := range n {
		cs.start(slot)
	}
	return cs
}

// start runs slot's instance and puts it in rotation.
func (cs *crashingSlots) start(slot int) {
	cs.mu.Lock()
	cs.starts++
	cs.mu.Unlock()
	var b *upstream.Backend
	in := startInstance(cs.t, "in", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/poison" {
			w.Write([]byte("ok"))
			return
		}
		cs.deaths.Add(1)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		cs.set.Remove(b)
		time.AfterFunc(30*time.Millisecond, func() { cs.start(slot) })
	})
	b = upstream.NewBackend("s", slot, in.addr())
	cs.set.Add(b)
}

// A GET that kills every instance it reaches is sent to two, then
// answered 502: not to each replacement in turn (six crashes, each
// doubling the slot's restart backoff), as nginx tries each server once.
// An instance that dies of something else still costs no request: the
// request goes to another, or to the replacement.
func TestAPoisonedRequestKillsAtMostTwoInstances(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		cs := newCrashingSlots(t, n)
		f := startProxy(t, Options{}, Route{Port: 1, Set: cs.set})
		start := time.Now()
		resp, _ := dial(t, f.addr).mustDo(get("x", "/poison"))
		if resp.StatusCode != 502 {
			t.Errorf("%d instances: the poisoned GET was answered %d, want 502", n, resp.StatusCode)
		}
		if d := cs.deaths.Load(); d != 2 {
			t.Errorf("%d instances: the poisoned GET killed %d, want 2", n, d)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%d instances: answered after %v", n, d)
		}
	}

	// One instance, dying once of something else while it has a GET: the
	// GET is sent again to its replacement, and answered.
	in := startInstance(t, "a", dieOnce("a"))
	set := upstream.NewSet("s", 5*time.Second)
	b := upstream.NewBackend("s", 0, in.addr())
	set.Add(b)
	f := startProxy(t, Options{}, Route{Port: 1, Set: set})
	go func() {
		for in.hits.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		set.Remove(b)
		time.Sleep(30 * time.Millisecond)
		set.Add(upstream.NewBackend("s", 0, in.addr()))
	}()
	resp, body := dial(t, f.addr).mustDo(get("x", "/"))
	if resp.StatusCode != 200 || body != "a GET" {
		t.Errorf("a GET on an instance that died once: %d %q, want its replacement's answer", resp.StatusCode, body)
	}
}

// A client that leaves in the middle of its upload (a body streamed to the
// instance) is logged and counted 499, as nginx logs a client that closed
// its request: before, no access log line and no count said it happened.
func TestAnUploadAbandonedMidwayIsLogged499(t *testing.T) {
	got := make(chan int64, 1)
	in := startInstance(t, "in", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got <- n
	})
	log, path := openAccessLog(t)
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in), AccessLog: log})
	cl := dial(t, f.addr)
	io.WriteString(cl.c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
	cl.c.Write(make([]byte, 1<<20))
	cl.c.Close()
	select {
	case n := <-got:
		if n >= 10000000 {
			t.Fatalf("the instance read %d bytes", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the instance's request did not end after its client left")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !counted(f.srv, "POST", "499") {
		if time.Now().After(deadline) {
			t.Fatalf("no POST counted 499: %+v", f.srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitLogLine(t, log, path, `"POST /up HTTP/1.1" 499 `)
}

// counted reports whether the proxy counted a request of method with code.
func counted(s *Server, method, code string) bool {
	for _, st := range s.Stats() {
		for _, rc := range st.Requests {
			if rc.Method == method && rc.Code == code && rc.Count > 0 {
				return true
			}
		}
	}
	return false
}

// thinker is an instance that answers nothing until its request ends
// (its connection closed by the proxy): ended says when.
func thinker(t *testing.T) (*instance, chan time.Time) {
	ended := make(chan time.Time, 1)
	in := startInstance(t, "in", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			ended <- time.Now()
		case <-time.After(20 * time.Second):
		}
	})
	return in, ended
}

// endedSoon waits for ended, the end of a thinker's request, which its
// client left at left.
func endedSoon(t *testing.T, ended chan time.Time, left time.Time) {
	t.Helper()
	select {
	case at := <-ended:
		if d := at.Sub(left); d > 2*time.Second {
			t.Errorf("the instance's request ended %v after its client left", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the instance's request did not end after its client left")
	}
}

// countedOnce waits until s has counted a request of method with code,
// and checks that in got it once.
func countedOnce(t *testing.T, s *Server, in *instance, method, code string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !counted(s, method, code) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s counted %s: %+v", method, code, s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := in.hits.Load(); n != 1 {
		t.Errorf("the instance got the request %d times, want once", n)
	}
}

// A client that leaves while the instance thinks (before any byte of the
// answer) is noticed within a watch or so: the instance's connection is
// closed, so its request ends, the request is not sent again, and it is
// logged and counted 499, as nginx does. Before, the proxy waited for the
// answer, however long, holding both connections, and logged it 200; an
// instance's drain waited for it.
//
// So is one that sent more behind its request (its next one, pipelined,
// or a stray CRLF) and then left: the bytes waiting are not the client.
func TestAClientThatLeavesBeforeTheAnswerEndsTheRequest(t *testing.T) {
	for _, after := range []string{"", get("x", "/next"), "\r\n"} {
		t.Run(fmt.Sprintf("then %q", after), func(t *testing.T) {
			in, ended := thinker(t)
			log, path := openAccessLog(t)
			f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in), AccessLog: log})
			cl := dial(t, f.addr)
			io.WriteString(cl.c, get("x", "/think")+after)
			waitUntil(t, "the request at the instance", func() bool { return in.hits.Load() == 1 })
			left := time.Now()
			cl.c.Close()
			endedSoon(t, ended, left)
			countedOnce(t, f.srv, in, "GET", "499")
			waitUntil(t, "no request in flight", func() bool { return f.srv.InFlight() == 0 })
			waitLogLine(t, log, path, `"GET /think HTTP/1.1" 499 `)
		})
	}
}

// A client that sent its next request while the instance thinks is
// there, and gets both answers.
func TestAClientThatPipelinesIsStillThere(t *testing.T) {
	in := startInstance(t, "in", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(600 * time.Millisecond) // a few of the client's watches
		io.WriteString(w, r.URL.Path)
	})
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	io.WriteString(cl.c, get("x", "/one")+get("x", "/two"))
	for _, want := range []string{"/one", "/two"} {
		resp, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
}

// Over HTTP/2 the same: a stream its client resets while the instance
// thinks ends the instance's request, and is counted 499, once.
func TestAnHTTP2StreamResetBeforeTheAnswerEndsTheRequest(t *testing.T) {
	in, ended := thinker(t)
	var logs syncbuf.Buffer
	f := startTLSProxy(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "s", in)})
	cl := f.client(true)
	ctx, cancel := context.WithCancel(t.Context())
	var left time.Time
	go func() {
		waitUntil(t, "the request at the instance", func() bool { return in.hits.Load() == 1 })
		left = time.Now()
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://a.test/think", nil)
	if resp, err := cl.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d, want the request cancelled", resp.StatusCode)
	}
	endedSoon(t, ended, left)
	countedOnce(t, f.srv, in, "GET", "499")
	// The client's doing, not the instance's: no warning of a failed
	// instance (a rapid reset made one a stream), as over HTTP/1.1.
	if strings.Contains(logs.String(), "instance failed") {
		t.Errorf("a client's reset logged as the instance's failure:\n%s", logs.String())
	}
}

// An instance whose head comes with a malformed chunk, in one write: none
// of the answer has left for the client when the chunk is found bad, so
// the client gets a 502 on a connection that goes on, and the log says
// 502, not 200 with bytes the client never got. A bad chunk after part of
// the answer has left still closes the connection (the answer is cut).
func TestAMalformedChunkBeforeAnyByteLeftIsA502(t *testing.T) {
	bad := badChunker(t)
	log, path := openAccessLog(t)
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOfAddr(t, "s", bad.ln.Addr().String()), AccessLog: log})
	cl := dial(t, f.addr)
	resp, body := cl.mustDo(get("x", "/bad"))
	if resp.StatusCode != 502 {
		t.Fatalf("got %d %q, want 502", resp.StatusCode, body)
	}
	if resp.Close {
		t.Error("the 502 closed the connection")
	}
	waitLogLine(t, log, path, `"GET /bad HTTP/1.1" 502 `)

	io.WriteString(cl.c, get("x", "/late"))
	late, err := http.ReadResponse(cl.br, nil)
	if err != nil || late.StatusCode != 200 {
		t.Fatalf("/late: %v %v, want the 200 that began", late, err)
	}
	if got, err := io.ReadAll(late.Body); err == nil || string(got) != "hello" {
		t.Errorf("/late's body: %q, %v; want hello, then the connection cut", got, err)
	}
}

// badChunker answers a chunked body with a good chunk, then a malformed
// one: in one write (in the proxy's first read with the head), or, for
// /late, 300 ms after the rest (which has left by then).
func badChunker(t *testing.T) *handInstance {
	return startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		const head, bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "zz\r\n"
		if req.URL.Path != "/late" {
			io.WriteString(c, head+bad)
			return false
		}
		io.WriteString(c, head)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(c, bad)
		return false
	})
}

// Over HTTP/2 the same: a malformed chunk read with the head is found
// before the head is written (it cannot be taken back there), a 502; one
// that comes later resets the stream, never a body taken for whole.
func TestAMalformedChunkBeforeAnyByteLeftIsA502OverHTTP2(t *testing.T) {
	bad := badChunker(t)
	log, path := openAccessLog(t)
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOfAddr(t, "s", bad.ln.Addr().String()), AccessLog: log})
	cl := f.client(true)
	resp, err := cl.Get("https://a.test/bad")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || resp.ProtoMajor != 2 {
		t.Fatalf("got %s %d %q, want a 502 over HTTP/2", resp.Proto, resp.StatusCode, body)
	}
	waitLogLine(t, log, path, `"GET /bad HTTP/2.0" 502 `)

	late, err := cl.Get("https://a.test/late")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(late.Body)
	late.Body.Close()
	if late.StatusCode != 200 || err == nil || string(got) != "hello" {
		t.Errorf("/late: %d %q, %v; want the 200 that began, hello, then the stream reset", late.StatusCode, got, err)
	}
}

// An instance that has not begun its answer within the service's
// response_header_timeout gets its request a 504, once (not sent again:
// it may be under way there), its connection closed so the request ends
// there too. One whose head came in time may be quiet longer (a stream).
func TestAnAnswerThatDoesNotBeginInTimeIsA504(t *testing.T) {
	in, ended := thinker(t)
	stream := startInstance(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		time.Sleep(700 * time.Millisecond)
		io.WriteString(w, "data: late\n\n")
	})
	slow, quiet := setOf(t, "s", in), setOf(t, "q", stream)
	slow.SetResponseHeaderTimeout(300 * time.Millisecond)
	quiet.SetResponseHeaderTimeout(300 * time.Millisecond)
	f := startProxy(t, Options{}, Route{Port: 1, Hosts: []string{"slow"}, Set: slow}, Route{Port: 1, Hosts: []string{"quiet"}, Set: quiet})
	cl := dial(t, f.addr)
	start := time.Now()
	resp, _ := cl.mustDo(get("slow", "/think"))
	if resp.StatusCode != 504 || resp.Close {
		t.Fatalf("got %d (close %v), want 504 on a connection that goes on", resp.StatusCode, resp.Close)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("504 after %v, want it after the 300ms limit", d)
	}
	endedSoon(t, ended, time.Now())
	countedOnce(t, f.srv, in, "GET", "504")

	resp, body := cl.mustDo(get("quiet", "/events"))
	if resp.StatusCode != 200 || body != "data: late\n\n" {
		t.Errorf("a stream quiet past the limit after its head: %d %q", resp.StatusCode, body)
	}
}

// waitLogLine waits until log, flushed, has a line with want in its file
// at path: a request's line is written after its answer went out.
func waitLogLine(t *testing.T, log *accesslog.Log, path, want string) {
	t.Helper()
	t.Cleanup(log.Close)
	for deadline := time.Now().Add(5 * time.Second); ; {
		log.Flush(context.Background())
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access log: %q, want a line with %q", b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client that leaves while its request waits for an instance (none in
// rotation: a one-instance restart, a crash's backoff) ends the wait: the
// request is logged 499 and goes to no instance that comes later. Before,
// a POST whose client had left was sent to the instance when it came.
func TestAClientThatLeavesWhileNoInstanceIsReadyIsNotServedLater(t *testing.T) {
	in := startInstance(t, "late", nil)
	set := upstream.NewSet("s", 10*time.Second)
	log, path := openAccessLog(t)
	f := startProxy(t, Options{}, Route{Port: 1, Set: set, AccessLog: log})
	cl := dial(t, f.addr)
	io.WriteString(cl.c, "POST /order HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	time.Sleep(300 * time.Millisecond) // waiting for an instance
	cl.c.Close()
	waitLogLine(t, log, path, `"POST /order HTTP/1.1" 499 `)
	set.Add(upstream.NewBackend("s", 0, in.addr()))
	time.Sleep(300 * time.Millisecond)
	if n := in.hits.Load(); n != 0 {
		t.Errorf("the instance that came got the request of a client gone %d times", n)
	}
}
