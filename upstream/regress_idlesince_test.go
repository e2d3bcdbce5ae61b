package upstream

import (
	"io"
	"net"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// TestAdoptedConnIdleCountsFromBeforeItsResponseEnded: a connection adopted
// mid-response at an upgrade (proxy/stream.go serveStream) was not taken by
// Get here; counted idle from when the new process got round to reading
// the response's end, on a saturated machine (an upgrade with
// thousands of connections, exactly when streams are adopted) that can be
// well after the instance wrote it and started its idle clock. Get(maxIdle)
// must not hand it to a request that cannot go again: the instance has seen
// it idle for longer than maxIdle.
func TestAdoptedConnIdleCountsFromBeforeItsResponseEnded(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	defer srv.Close()
	c, err := Adopt(nc.(*net.TCPConn), nil) // the rest of a response, passed by the old process
	if err != nil {
		t.Fatal(err)
	}
	const rest = "0\r\n\r\n"
	if _, err := srv.Write([]byte(rest)); err != nil { // the instance ends its response: its idle clock starts
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // the saturated proxy reads it late
	if _, err := io.ReadFull(c.R, make([]byte, len(rest))); err != nil {
		t.Fatal(err)
	}
	b.Put(c)
	got, err := b.Get(100 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got == c {
		t.Errorf("Get(100ms) handed out the adopted connection, idle at the instance for 150ms; want a new one")
	} else {
		c.Close()
	}
}

// TestFreshConnNotHiddenUnderAnOldOne: Get(maxIdle) looks only at the top
// of the pool, which was right while the pool was ordered by idleSince (each
// Put was "now"). Since Put uses the time the connection was taken for its request, a connection put
// back after a long response (a stream, a download, a slow handler) lands
// on top with an old idleSince and hides fresh ones under it: every request
// that cannot go again dials a new connection until a GET pops it.
func TestFreshConnNotHiddenUnderAnOldOne(t *testing.T) {
	addr, accepted := tcptest.AcceptAll(t)
	b := NewBackend("s", 0, addr)
	fresh, err := b.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	long, err := b.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	long.takenAt = time.Now().Add(-2 * time.Second) // a 2 s stream, just ended
	fresh.takenAt = time.Now()                      // a quick GET, answered
	b.Put(fresh)
	b.Put(long)
	// maxIdle 1 s: fresh stays fresh however long a loaded machine takes
	// to get here.
	got, err := b.Get(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got != fresh {
		t.Errorf("Get(1s) with a connection idle for ~0 in the pool: got reused=%v (a new dial: %v); want the fresh pooled one",
			got.Reused, !got.Reused)
	}
	for _, c := range b.TakeIdle() {
		if c != got {
			c.Close()
		}
	}
}
