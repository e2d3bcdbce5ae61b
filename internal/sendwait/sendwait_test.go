package sendwait

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/sockpeek"
	"smoothserve/internal/tcptest"
)

func sender(t *testing.T, c *net.TCPConn) *Sender {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var s Sender
	s.Init(raw)
	return &s
}

func peek(t *testing.T, c *net.TCPConn) sockpeek.State {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st sockpeek.State
	raw.Control(func(fd uintptr) { st = sockpeek.FD(fd) })
	return st
}

// The answer comes 50 ms after the request: Send returns with it waiting
// in the socket, for the read that follows to find at once.
func TestSendReturnsOnceTheAnswerCame(t *testing.T) {
	c, peer := tcptest.Pair(t)
	go func() {
		buf := make([]byte, 64)
		n, _ := peer.Read(buf)
		time.Sleep(50 * time.Millisecond)
		peer.Write(bytes.ToUpper(buf[:n]))
	}()
	s := sender(t, c)
	t0 := time.Now()
	n, err := s.Send([]byte("hello"))
	if took := time.Since(t0); n != 5 || err != nil || took < 40*time.Millisecond {
		t.Fatalf("Send = %d, %v after %v; want 5, nil after the answer (50 ms)", n, err, took)
	}
	if st := peek(t, c); st != sockpeek.Data {
		t.Fatalf("after Send the socket is %v, want data", st)
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); string(buf[:n]) != "HELLO" || err != nil {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

// A peer that reads nothing: Send writes what the socket takes and returns
// at once, the rest left to the caller.
func TestSendStopsAtAFullSocket(t *testing.T) {
	c, _ := tcptest.Pair(t)
	p := make([]byte, 32<<20)
	t0 := time.Now()
	n, err := sender(t, c).Send(p)
	if err != nil || n <= 0 || n >= len(p) || time.Since(t0) > 2*time.Second {
		t.Fatalf("Send of %d bytes to a peer that reads nothing = %d, %v after %v; want part of it, nil, at once",
			len(p), n, err, time.Since(t0))
	}
}

// A read deadline already past: nothing is written, and no error; the
// caller's own write meets whatever it meets.
func TestSendWithTheReadDeadlinePast(t *testing.T) {
	c, peer := tcptest.Pair(t)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if n, err := sender(t, c).Send([]byte("hello")); n != 0 || err != nil {
		t.Fatalf("Send = %d, %v; want 0, nil", n, err)
	}
	peer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := peer.Read(make([]byte, 8)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer read %d bytes (%v); want none", n, err)
	}
}

// No answer before the read deadline: Send returns then, all written, and
// the read that follows meets the deadline.
func TestSendEndsAtTheReadDeadline(t *testing.T) {
	c, peer := tcptest.Pair(t)
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	t0 := time.Now()
	if n, err := sender(t, c).Send([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Send = %d, %v; want 5, nil", n, err)
	}
	if took := time.Since(t0); took < 80*time.Millisecond || took > 2*time.Second {
		t.Fatalf("Send returned after %v; want at the deadline (100 ms)", took)
	}
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after Send = %v, want the deadline", err)
	}
	if got, _ := io.ReadAll(io.LimitReader(peer, 5)); string(got) != "hello" {
		t.Fatalf("the peer got %q", got)
	}
}

// The peer reads the request and closes: the wait ends, and the read that
// follows finds the end.
func TestSendEndsWhenThePeerCloses(t *testing.T) {
	c, peer := tcptest.Pair(t)
	go func() {
		peer.Read(make([]byte, 64))
		peer.Close()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := sender(t, c).Send([]byte("hello"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Send = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send still waits 5 s after the peer closed")
	}
	if n, err := c.Read(make([]byte, 8)); n != 0 || err == nil {
		t.Fatalf("Read after the close = %d, %v; want the end", n, err)
	}
}

// The peer had reset the connection: the write fails, and Send says so.
func TestSendFailsOnAResetConnection(t *testing.T) {
	c, peer := tcptest.Pair(t)
	peer.SetLinger(0)
	peer.Close() // RST
	deadline := time.Now().Add(5 * time.Second)
	for peek(t, c) != sockpeek.Closed && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, err := sender(t, c).Send([]byte("hello"))
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Send on a reset connection = %v, want ECONNRESET or EPIPE", err)
	}
}

// Send allocates nothing: it is on every request's path.
func TestSendAllocatesNothing(t *testing.T) {
	c, peer := tcptest.Pair(t)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := peer.Read(buf)
			if err != nil {
				return
			}
			peer.Write(buf[:n])
		}
	}()
	s := sender(t, c)
	p, buf := []byte("ping"), make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		if n, err := s.Send(p); n != len(p) || err != nil {
			t.Fatalf("Send = %d, %v", n, err)
		}
		if _, err := io.ReadFull(c, buf[:len(p)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Send and its answer's read: %v allocations, want 0", allocs)
	}
}

// The peer closed its side before SendQuiet (its close's readiness long
// taken): SendQuiet writes nothing and says so; on a quiet socket it is
// Send.
func TestSendQuietLooksFirst(t *testing.T) {
	c, peer := tcptest.Pair(t)
	go func() {
		buf := make([]byte, 64)
		n, _ := peer.Read(buf)
		peer.Write(buf[:n])
	}()
	if n, err := sender(t, c).SendQuiet([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("SendQuiet on a quiet socket = %d, %v; want 5, nil", n, err)
	}

	c2, peer2 := tcptest.Pair(t)
	peer2.CloseWrite() // a FIN, the peer still reading
	deadline := time.Now().Add(5 * time.Second)
	for peek(t, c2) != sockpeek.Closed && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n, err := sender(t, c2).SendQuiet([]byte("hello")); n != 0 || !errors.Is(err, ErrNotQuiet) {
		t.Fatalf("SendQuiet after the peer's FIN = %d, %v; want 0, ErrNotQuiet", n, err)
	}
	peer2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := peer2.Read(make([]byte, 8)); n != 0 {
		t.Fatalf("the peer read %d bytes; want none", n)
	}
}
