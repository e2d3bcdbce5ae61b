package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"
)

// waitUntil polls cond until it holds or 5 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClosed fails unless the client's connection is closed by the proxy
// within 5 s, with nothing more sent.
func expectClosed(t *testing.T, cl *client, what string) {
	t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := cl.br.ReadByte(); err == nil {
		t.Fatalf("%s: got %q, want the connection closed", what, b)
	} else if isTimeout(err) {
		t.Fatalf("%s: still open after 5s", what)
	}
}

func TestDrainingClosesKeepAliveConnections(t *testing.T) {
	// The slow request is answered once draining has begun, when the test
	// says, not after a time a loaded machine may take to get there.
	slowDone, finishSlow := context.WithCancel(context.Background())
	t.Cleanup(finishSlow)
	slow := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-slowDone.Done()
		}
		io.WriteString(w, "ok")
	})
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", slow)})

	idle := dial(t, f.addr)
	idle.mustDo(get("x", "/"))
	busy := dial(t, f.addr)
	busy.mustDo(get("x", "/"))
	fresh := dial(t, f.addr) // no request yet: served once, not closed

	type answer struct {
		close bool
		err   error
	}
	busyDone := make(chan answer, 1)
	go func() {
		resp, _, err := busy.do(get("x", "/slow"))
		if err != nil {
			busyDone <- answer{err: err}
			return
		}
		busyDone <- answer{close: resp.Close}
	}()
	waitUntil(t, "the slow request in flight", func() bool { return f.srv.InFlight() == 1 })

	f.srv.SetDraining(true)
	f.srv.SetDraining(true) // idempotent
	finishSlow()
	expectClosed(t, idle, "idle connection at SetDraining(true)")
	if a := <-busyDone; a.err != nil || !a.close {
		t.Fatalf("response in flight: close=%v err=%v, want Connection: close", a.close, a.err)
	}
	expectClosed(t, busy, "connection answered while draining")

	resp, _ := fresh.mustDo(get("x", "/"))
	if !resp.Close {
		t.Errorf("new connection's response while draining: no Connection: close")
	}
	expectClosed(t, fresh, "new connection after its request")
	waitUntil(t, "nothing in flight", func() bool { return f.srv.InFlight() == 0 })
	if n := f.srv.DrainClosed(); n != 3 {
		t.Errorf("DrainClosed = %d, want 3", n)
	}

	f.srv.SetDraining(false)
	again := dial(t, f.addr)
	for range 2 {
		if resp, _ := again.mustDo(get("x", "/")); resp.Close {
			t.Fatalf("after SetDraining(false): Connection: close")
		}
	}
}

func TestDrainingSendsHTTP2GoAway(t *testing.T) {
	release := make(chan struct{})
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	c := f.client(true)
	defer c.CloseIdleConnections()

	// try gets path over HTTP/2 and reports whether it went on a
	// connection used before.
	try := func(path string) (reused bool, err error) {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://a.test/"+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			return false, err
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			return false, fmt.Errorf("proto %s, want HTTP/2", resp.Proto)
		}
		return reused, nil
	}
	do := func(path string) bool {
		t.Helper()
		reused, err := try(path)
		if err != nil {
			t.Fatal(err)
		}
		return reused
	}
	do("")
	if !do("") {
		t.Fatal("second request on a new connection before draining")
	}
	done := make(chan bool)
	go func() { done <- do("slow") }()
	waitUntil(t, "the slow stream in flight", func() bool { return f.srv.InFlight() == 1 })
	f.srv.SetDraining(true)
	close(release)
	<-done
	// GOAWAY came after the stream: a request soon opens a connection. (One
	// that reached the server before it saw the stream done is answered on
	// the old connection, which says GOAWAY after it: how soon depends on
	// the machine.)
	waitUntil(t, "a request after draining began on a new connection (GOAWAY)", func() bool { return !do("") })
	// An idle HTTP/2 connection is told to go by SetDraining(true)
	// (drain_h2_test.go reads its GOAWAY): a request sent meanwhile is
	// answered, and soon one goes on a new connection.
	f.srv.SetDraining(false)
	do("")
	if !do("") {
		t.Fatal("after SetDraining(false): not kept alive")
	}
	f.srv.SetDraining(true)
	// The idle connection; and the one that took the request during the
	// first drain if it is still open: its GOAWAY's close waits for the
	// client (a second at most). A fresh-clone CI run saw 2.
	if n := f.srv.DrainClosed(); n != 1 && n != 2 {
		t.Errorf("DrainClosed = %d, want 1 (the idle HTTP/2 connection) or 2 (and the one GOAWAY left open)", n)
	}
	waitUntil(t, "a request after draining began on a new connection (GOAWAY)", func() bool { return !do("") })
}
