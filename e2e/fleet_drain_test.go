package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A response still streaming when DrainDelay ends (a download, server-sent
// events) ends as the instance ends it: every line and the last chunk
// reach the client, and only then does the host close the connection. The
// drain waits for it. On a fresh connection and on one that served a
// request before; without a load balancer, so that what is seen is the
// host's doing.
func TestFleetDrainLetsStreamsInFlightEnd(t *testing.T) {
	e := newEnv(t, 8)
	admin := e.ports.next()
	e.writeMain(fmt.Sprintf("AdminAddr: 127.0.0.1:%d\nDrainDelay: 500ms\n", admin))
	e.service("web", "web.test", 2, closesIdleConns)
	in := install(e)
	if code, out, errOut := in.run("start"); code != 0 {
		t.Fatalf("smoothtool start: exit %d\n%s%s", code, out, errOut)
	}

	const lines, every = 15, 100 * time.Millisecond // 1.5 s, across the 500 ms DrainDelay
	path := fmt.Sprintf("/stream?lines=%d&ms=%d", lines, every.Milliseconds())
	fresh, freshR := dialGet(t, e.proxyAddr(), path, 0)
	kept, keptR := dialGet(t, e.proxyAddr(), "/", 0)
	if resp, err := http.ReadResponse(keptR, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET / before the stream: %v %v", resp, err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if _, err := fmt.Fprintf(kept, "GET %s HTTP/1.1\r\nHost: web.test\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	type drainResult struct {
		code     int
		out      string
		returned time.Time
	}
	drained := make(chan drainResult, 1)
	go func() {
		code, out, errOut := in.run("drain", "--wait", "--timeout", "10s")
		drained <- drainResult{code, out + errOut, time.Now()}
	}()

	var ended time.Time
	streams := []struct {
		name string
		c    net.Conn
		br   *bufio.Reader
	}{{"fresh connection", fresh, freshR}, {"kept-alive connection", kept, keptR}}
	for _, s := range streams {
		resp, err := http.ReadResponse(s.br, nil)
		if err != nil {
			t.Fatalf("%s: the stream's head: %v", s.name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := strings.Count(string(body), "\n")
		if err != nil || got != lines {
			t.Errorf("%s: the stream got %d of %d lines, then %v (the host cut it short)", s.name, got, lines, err)
			continue
		}
		ended = time.Now()
	}
	for _, s := range streams {
		// The stream is over: the host closes the connection, so that
		// the client goes to another host for its next request. Its head
		// went out before the drain said Connection: close, so it has a
		// last call (a second) for a request its client may be sending.
		s.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := s.br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("%s: after the stream, read %d bytes, %v; want the host to close it (EOF)", s.name, n, err)
		}
	}
	d := <-drained
	t.Logf("smoothtool drain --wait: exit %d: %s", d.code, strings.TrimSpace(d.out))
	if d.code != 0 || !strings.Contains(d.out, "no request in flight") {
		t.Errorf("smoothtool drain --wait: exit %d, %q; want drained with no request in flight", d.code, d.out)
	}
	if !ended.IsZero() && d.returned.Before(ended.Add(-50*time.Millisecond)) {
		t.Errorf("drain --wait returned %v before the streams in flight ended", ended.Sub(d.returned))
	}
}
