package proxy

import (
	"bufio"
	"bytes"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
	"smoothserve/upstream"
)

// heldInstance is an instance that reads requests and answers none until
// released: every request sent to it stays in flight. It holds a small
// buffer a connection, so that what the heap holds while the requests wait
// is the proxy's.
type heldInstance struct {
	addr    string
	pending atomic.Int64
	release chan struct{}
}

func startHeldInstance(t *testing.T) *heldInstance {
	t.Helper()
	in := &heldInstance{release: make(chan struct{})}
	in.addr = tcptest.Serve(t, in.serve)
	return in
}

// serve answers each request (a head without a body) once released.
func (in *heldInstance) serve(c net.Conn) {
	buf := make([]byte, 512)
	var got []byte
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		got = append(got, buf[:n]...)
		for {
			i := bytes.Index(got, []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			got = got[i+4:]
			in.pending.Add(1)
			<-in.release
			if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")); err != nil {
				return
			}
		}
	}
}

// heapLive is the heap in use once garbage (and what sits in sync.Pools,
// which two collections empty) is gone.
func heapLive() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// heapGrowth is heapLive() less before, in bytes: negative when more was
// freed meanwhile (an earlier test's connections going) than was kept.
func heapGrowth(before uint64) float64 {
	return float64(heapLive()) - float64(before)
}

// A client connection whose request waits for its instance holds no
// buffer: its reader and writer, and the instance connection's reader, are
// back in their pools until the answer comes (issue 20: busy connections,
// most of which wait for an instance at any time). Before, each held
// 8 + 16 + 16 KiB for the wait.
func TestWaitingForTheInstanceHoldsNoBuffers(t *testing.T) {
	const n = 300
	in := startHeldInstance(t)
	set := upstream.NewSet("a", time.Second)
	set.Add(upstream.NewBackend("a", 0, in.addr))
	f := startProxy(t, Options{}, Route{Port: 1, Set: set})

	before := heapLive()
	clients := make([]net.Conn, n)
	for i := range clients {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	for deadline := time.Now().Add(10 * time.Second); in.pending.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests reached the instance in 10 s", in.pending.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	perRequest := heapGrowth(before) / n
	close(in.release)
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 200 OK\r\n" {
			t.Fatalf("client %d: %q, %v", i, line, err)
		}
	}
	t.Logf("%d requests waiting for their instance: %.0f bytes of heap each (proxy, and the test's clients and instance)", n, perRequest)
	if perRequest > 12<<10 {
		t.Errorf("a request waiting for its instance holds %.0f bytes of heap, want under 12 KiB (no buffers)", perRequest)
	}
}

// A client connection waiting for its next request (not yet parked: that
// takes a second or two) holds no buffer either: its writer goes back to
// the pool once flushed, and a plain connection waits for readability
// without a reader, taking one when its client's bytes come. Before, each
// held its 8 KiB reader for the wait.
func TestWaitingForTheClientHoldsNoBuffers(t *testing.T) {
	const n = 300
	in := startHeldInstance(t)
	close(in.release) // answers at once
	set := upstream.NewSet("a", time.Second)
	set.Add(upstream.NewBackend("a", 0, in.addr))
	f := startProxy(t, Options{parkAfter: -1}, Route{Port: 1, Set: set})

	request := []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	ask := func(i int, c net.Conn, br *bufio.Reader) {
		t.Helper()
		if _, err := c.Write(request); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 200 OK\r\n" {
			t.Fatalf("client %d: %q, %v", i, line, err)
		}
		for line != "\r\n" {
			line, _ = br.ReadString('\n')
		}
		if _, err := br.Discard(2); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	// The connections the proxy serves meanwhile are counted with them:
	// one first, to count what any connection costs.
	before := heapLive()
	clients := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range clients {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i], readers[i] = c, bufio.NewReaderSize(c, 64)
		ask(i, c, readers[i])
	}
	time.Sleep(50 * time.Millisecond) // each is waiting again
	perConn := heapGrowth(before) / n
	for i, c := range clients { // still served
		ask(i, c, readers[i])
	}
	t.Logf("%d client connections waiting for their next request: %.0f bytes of heap each (proxy, and the test's clients and instance)", n, perConn)
	if perConn > 6<<10 {
		t.Errorf("a connection waiting for its client's next request holds %.0f bytes of heap, want under 6 KiB (no reader)", perConn)
	}
}
