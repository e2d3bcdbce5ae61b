package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A response streamed through an upgrade of smoothserve (server-sent
// events, a long download) is passed to the new daemon from where it
// stands: every byte once, in order, and the connection goes on.

// dialGet opens a connection to addr and sends GET path for web.test on it.
// It is closed at the end of the test; reads and writes fail after 40 s.
func dialGet(t *testing.T, addr, path string, readBuffer int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if readBuffer > 0 {
		// A small receive buffer keeps a big body in the proxy, not in
		// the client's kernel, while the client reads slowly.
		c.(*net.TCPConn).SetReadBuffer(readBuffer)
	}
	c.SetDeadline(time.Now().Add(40 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: web.test\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readHead reads a response's status and header fields as they came (not
// http.ReadResponse, which drops or merges framing fields).
func readHead(br *bufio.Reader) (status int, h textproto.MIMEHeader, err error) {
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return 0, nil, err
	}
	if f := strings.Fields(line); len(f) < 2 || f[0] != "HTTP/1.1" {
		return 0, nil, fmt.Errorf("status line %q", line)
	} else if status, err = strconv.Atoi(f[1]); err != nil {
		return 0, nil, fmt.Errorf("status line %q", line)
	}
	h, err = tp.ReadMIMEHeader()
	return status, h, err
}

var errStopped = errors.New("stopped reading")

// readChunks reads a chunked body strictly: hex size and CRLF, that many
// bytes and CRLF, ..., the 0 chunk, trailer fields if any, an empty line.
// It hands each chunk's data to onData as it arrives; onData returning
// false stops there (errStopped).
func readChunks(br *bufio.Reader, onData func([]byte) bool) error {
	for i := 1; ; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("chunk %d: reading its size line (got %q): %w", i, line, err)
		}
		size, _, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), ";")
		n, err := strconv.ParseUint(size, 16, 31)
		if !strings.HasSuffix(line, "\r\n") || size == "" || err != nil {
			return fmt.Errorf("chunk %d: size line %q, want hex digits and CRLF", i, line)
		}
		for n == 0 {
			if line, err = br.ReadString('\n'); line == "\r\n" {
				return nil
			} else if err != nil || !strings.HasSuffix(line, "\r\n") || !strings.Contains(line, ":") {
				return fmt.Errorf("after the 0 chunk: %q (%v), want trailer fields and an empty line", line, err)
			}
		}
		data := make([]byte, n+2)
		if _, err := io.ReadFull(br, data); err != nil {
			return fmt.Errorf("chunk %d of %d bytes: %w", i, n, err)
		}
		if string(data[n:]) != "\r\n" {
			return fmt.Errorf("chunk %d of %d bytes ends with %q, want CRLF", i, n, data[n:])
		}
		if !onData(data[:n]) {
			return errStopped
		}
	}
}

// sseEvent is one event of the demo's /events: "id: I\ndata: D\n\n".
type sseEvent struct {
	id   int
	data string
	at   time.Time // when it arrived
}

// sseReader collects the events of an /events body, chunk by chunk.
type sseReader struct {
	buf    string
	events []sseEvent
	bad    []string     // pieces that are no event
	count  atomic.Int32 // len(events), for another goroutine to watch
}

func (r *sseReader) add(data []byte) bool {
	r.buf += string(data)
	for ev, rest, ok := strings.Cut(r.buf, "\n\n"); ok; ev, rest, ok = strings.Cut(r.buf, "\n\n") {
		r.buf = rest
		idLine, dataLine, _ := strings.Cut(ev, "\n")
		id, err := strconv.Atoi(strings.TrimPrefix(idLine, "id: "))
		if err != nil || !strings.HasPrefix(idLine, "id: ") || !strings.HasPrefix(dataLine, "data: ") {
			r.bad = append(r.bad, ev)
			continue
		}
		r.events = append(r.events, sseEvent{id, strings.TrimPrefix(dataLine, "data: "), time.Now()})
		r.count.Store(int32(len(r.events)))
	}
	return true
}

// checkEvents checks that the events are ids 1..n, each once, in order,
// all from one instance ("event I/n pid=P"), and returns P.
func checkEvents(t *testing.T, r *sseReader, n int) int {
	t.Helper()
	var ids, want []int
	pid, other := 0, ""
	for i, ev := range r.events {
		ids = append(ids, ev.id)
		if i == 0 {
			pid, _ = pidIn(ev.data)
		}
		if w := fmt.Sprintf("event %d/%d pid=%d", ev.id, n, pid); ev.data != w && other == "" {
			other = fmt.Sprintf("event #%d is %q, want %q (one response of one instance)", i+1, ev.data, w)
		}
	}
	for id := 1; id <= n; id++ {
		want = append(want, id)
	}
	if !slices.Equal(ids, want) || len(r.bad) > 0 || r.buf != "" || other != "" {
		t.Errorf("events with the ids %v, want the ids 1..%d once each, in order; %s; not events: %q; left over: %q", ids, n, other, r.bad, r.buf)
	}
	return pid
}

// waitUntil polls cond every 5 ms for up to within.
func waitUntil(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// streamAcrossUpgrade waits until progress reaches from, upgrades the
// daemon, and waits (up to 25 s) for the response's reader to end with
// done. It returns the upgrade's times, progress when the old daemon was
// gone, and what the reader ended with.
func streamAcrossUpgrade(t *testing.T, in *installed, progress func() int64, from int64, done <-chan error) (ready, exited time.Duration, atExit int64, err error) {
	t.Helper()
	if !waitUntil(5*time.Second, func() bool { return progress() >= from }) {
		t.Fatalf("the response did not reach %d within 5s: %d", from, progress())
	}
	ready, exited, err = upgradeBySIGHUP(in)
	if err != nil {
		t.Fatalf("upgrade during the response, at %d: %v", progress(), err)
	}
	atExit = progress()
	select {
	case err = <-done:
	case <-time.After(25 * time.Second):
		t.Fatalf("the response did not end within 25s of the upgrade; at %d", progress())
	}
	return ready, exited, atExit, err
}

// nextRequestAnswered sends GET / on the connection whose response spanned
// the upgrade: it goes on as any other.
func nextRequestAnswered(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Errorf("the next request on the connection whose response spanned the upgrade: %v", err)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello") || resp.Close {
		t.Errorf("the next request on the connection: %d %q close=%v %v; want 200 hello, the connection kept", resp.StatusCode, body, resp.Close, err)
	}
}

// TestSSEStreamAcrossAnUpgrade: a response streamed through an upgrade of
// smoothserve is passed on, not waited out nor cut: server-sent events
// (chunked), and a big body with a Content-Length that the client reads
// slowly (the demo has no slow endpoint with a Content-Length). Each
// arrives whole, in order and well framed, and the connection goes on.
func TestSSEStreamAcrossAnUpgrade(t *testing.T) {
	t.Run("events", func(t *testing.T) {
		const n = 60 // one every 100 ms: 6 s
		in := startInstalled(t, "", "")
		c, br := dialGet(t, in.proxyAddr(), fmt.Sprintf("/events?n=%d&ms=100", n), 0)
		status, h, err := readHead(br)
		if err != nil || status != 200 || h.Get("Transfer-Encoding") != "chunked" || h["Content-Length"] != nil {
			t.Fatalf("/events: status %d, header %v, %v; want 200, chunked, no Content-Length", status, h, err)
		}
		var sse sseReader
		done := make(chan error, 1)
		go func() { done <- readChunks(br, sse.add) }()
		progress := func() int64 { return int64(sse.count.Load()) }
		ready, exited, atExit, err := streamAcrossUpgrade(t, in, progress, 10, done)
		if err != nil {
			t.Errorf("the chunked body after %d events: %v", len(sse.events), err)
		}
		pid := checkEvents(t, &sse, n)
		var gap time.Duration
		for i := 1; i < len(sse.events); i++ {
			gap = max(gap, sse.events[i].at.Sub(sse.events[i-1].at))
		}
		t.Logf("%d events from pid %d; SIGHUP after event 10: new daemon ready after %v, old one gone after %v, at event %d; longest wait between events %v",
			len(sse.events), pid, ready.Round(time.Millisecond), exited.Round(time.Millisecond), atExit, gap.Round(time.Millisecond))
		if atExit >= n {
			t.Errorf("the old smoothserve exited %v after SIGHUP, once all %d events had arrived: it waited the stream out instead of passing it on", exited.Round(time.Millisecond), n)
		}
		if gap > 2*time.Second {
			t.Errorf("the events stopped for %v across the upgrade; want them to go on within 2s", gap.Round(time.Millisecond))
		}
		if err == nil {
			nextRequestAnswered(t, c, br)
		}
	})
	t.Run("content-length", func(t *testing.T) {
		const size, rate = 48 << 20, 8 << 20 // about 6 s
		in := startInstalled(t, "", "")
		c, br := dialGet(t, in.proxyAddr(), fmt.Sprintf("/size?bytes=%d", size), 64<<10)
		status, h, err := readHead(br)
		if err != nil || status != 200 || h.Get("Content-Length") != strconv.Itoa(size) || h["Transfer-Encoding"] != nil {
			t.Fatalf("/size: status %d, header %v, %v; want 200, Content-Length %d, not chunked", status, h, err, size)
		}
		var got atomic.Int64
		done := make(chan error, 1)
		go func() { done <- readPattern(br, size, rate, &got) }()
		ready, exited, atExit, err := streamAcrossUpgrade(t, in, got.Load, 4<<20, done)
		t.Logf("%d bytes; SIGHUP after 4 MiB: new daemon ready after %v, old one gone after %v, at byte %d", got.Load(), ready.Round(time.Millisecond), exited.Round(time.Millisecond), atExit)
		if err != nil {
			t.Fatalf("the body across the upgrade: %v", err)
		}
		// The sockets hold up to 4 MiB (tcp_wmem's default maximum) of what
		// the proxy has written.
		if atExit > size-8<<20 {
			t.Errorf("the old smoothserve exited %v after SIGHUP, when the client had read %d of %d bytes (the sockets hold up to 4 MiB): it waited the response out instead of passing it on",
				exited.Round(time.Millisecond), atExit, size)
		}
		nextRequestAnswered(t, c, br)
	})
}

// readPattern reads size bytes of /size's body at about rate bytes a
// second, checking them against the demo's pattern, and counts them in got.
func readPattern(br *bufio.Reader, size, rate int64, got *atomic.Int64) error {
	const pattern, piece = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.", 64 << 10
	want := strings.Repeat(pattern, piece/len(pattern)+2)
	buf := make([]byte, piece)
	start := time.Now()
	for off := int64(0); off < size; {
		n, err := br.Read(buf[:min(piece, size-off)])
		at := int(off % int64(len(pattern)))
		if string(buf[:n]) != want[at:at+n] {
			i := 0
			for buf[i] == want[at+i] {
				i++
			}
			return fmt.Errorf("byte %d of the body is %q, want %q", off+int64(i), buf[i], want[at+i])
		}
		if off += int64(n); err != nil {
			return fmt.Errorf("after %d bytes of %d: %w", off, size, err)
		}
		got.Store(off)
		time.Sleep(time.Duration(off)*time.Second/time.Duration(rate) - time.Since(start))
	}
	return nil
}
