package sockpeek

import (
	"net"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

func peek(t *testing.T, c net.Conn) State {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var s State
	raw.Control(func(fd uintptr) { s = FD(fd) })
	return s
}

func TestStates(t *testing.T) {
	c, s := tcptest.Pair(t)
	if got := peek(t, c); got != Quiet {
		t.Errorf("open, nothing sent: %v, want quiet", got)
	}
	s.Write([]byte("x"))
	waitFor(t, c, Data)
	buf := make([]byte, 1)
	c.Read(buf)
	s.Close()
	waitFor(t, c, Closed)
}

func waitFor(t *testing.T, c net.Conn, want State) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for peek(t, c) != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := peek(t, c); got != want {
		t.Fatalf("peek: %v, want %v", got, want)
	}
}

func hungUp(t *testing.T, c net.Conn) bool {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var h bool
	raw.Control(func(fd uintptr) { h = HungUpFD(fd) })
	return h
}

// A close behind bytes still waiting shows as a hang-up, though FD sees
// the bytes (Data); a half-close shows too. Open, it does not.
func TestHungUpBehindData(t *testing.T) {
	c, s := tcptest.Pair(t)
	if hungUp(t, c) {
		t.Error("open, nothing sent: hung up")
	}
	s.Write([]byte("next request"))
	waitFor(t, c, Data)
	if hungUp(t, c) {
		t.Error("open, bytes sent: hung up")
	}
	s.CloseWrite()
	deadline := time.Now().Add(2 * time.Second)
	for !hungUp(t, c) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !hungUp(t, c) {
		t.Error("half-closed behind its bytes: not hung up")
	}
	if got := peek(t, c); got != Data {
		t.Errorf("peek: %v, want data (the bytes come first)", got)
	}
}
