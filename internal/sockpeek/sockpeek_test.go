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
