package tcptest

import (
	"context"
	"net"
	"os"
	"testing"
	"time"
)

// SharedSocket is a listening socket on 127.0.0.1 that several servers
// accept on at once, as the old and the new smoothserve do at an upgrade.
type SharedSocket struct {
	Addr string
	f    *os.File // the socket, held open to the test's end
}

// Shared opens a SharedSocket.
func Shared(t testing.TB) *SharedSocket {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &SharedSocket{Addr: ln.Addr().String(), f: f}
}

// Listener returns a new listener on the socket, for one server: closing
// it leaves the socket to the others. It is closed at the test's end.
func (s *SharedSocket) Listener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.FileListener(s.f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// HandOvers runs n hand-overs as at upgrades: start starts a server on
// the shared sockets and returns how to stop it; each next one is started,
// and gap later the one before is stopped (within 5 s). A stop's error
// fails the test. It returns the last server's stop, for the caller to
// call once its clients are done.
func HandOvers(t testing.TB, n int, gap time.Duration, start func() (stop func(context.Context) error)) (stopLast func(context.Context) error) {
	t.Helper()
	stop := start()
	for i := range n {
		next := start()
		time.Sleep(gap)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := stop(ctx); err != nil {
			t.Errorf("hand-over %d: stopping the server before: %v", i+1, err)
		}
		cancel()
		stop = next
	}
	return stop
}
