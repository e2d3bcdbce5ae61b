package sockconn

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// pair returns a Conn made of a dup of the server side of a loopback TCP
// connection (as a passed descriptor is: another descriptor of the same
// socket, non-blocking), and the client side.
func pair(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	cl, sv := tcptest.Pair(t)
	defer sv.Close() // the sender closes its own once it passed it
	return passed(t, sv), cl
}

// passed makes a Conn of a dup of tc's descriptor.
func passed(t *testing.T, tc *net.TCPConn) *Conn {
	t.Helper()
	raw, _ := tc.SyscallConn()
	fd := -1
	raw.Control(func(s uintptr) { fd, _ = syscall.Dup(int(s)) })
	if fd < 0 {
		t.Fatal("dup failed")
	}
	c, err := New(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestReadWriteAddrsAndEOF(t *testing.T) {
	c, cl := pair(t)
	if got, want := c.RemoteAddr().String(), cl.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr %s, want %s", got, want)
	}
	if got, want := c.LocalAddr().String(), cl.RemoteAddr().String(); got != want {
		t.Errorf("LocalAddr %s, want %s", got, want)
	}
	if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
		t.Errorf("RemoteAddr is a %T, want *net.TCPAddr", c.RemoteAddr())
	}
	cl.Write([]byte("ping"))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read %q %v", buf[:n], err)
	}
	big := strings.Repeat("x", 4<<20) // more than the socket buffers: Write waits in the poller
	go func() {
		if _, err := c.Write([]byte(big)); err != nil {
			t.Errorf("Write: %v", err)
		}
		c.CloseWrite()
	}()
	got, err := io.ReadAll(cl)
	if err != nil || len(got) != len(big) {
		t.Fatalf("client read %d bytes, %v; want %d and the end (CloseWrite)", len(got), err, len(big))
	}
	cl.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read after the peer closed: %d %v, want io.EOF", n, err)
	}
}

func TestDeadlinesAndCloseErrorsAreNets(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read past the deadline: %v (%T), want a net.Error timeout wrapping os.ErrDeadlineExceeded", err, err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Errorf("the deadline came after %v, want about 50 ms", d)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("a Read blocked at Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	rc, _ := c.SyscallConn()
	if err := rc.Read(func(uintptr) bool { return true }); !errors.Is(err, net.ErrClosed) {
		t.Errorf("RawConn.Read after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a second Close: %v, want net.ErrClosed", err)
	}
}

func TestRawConnReadsInThePoller(t *testing.T) {
	c, cl := pair(t)
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		cl.Write([]byte("hi"))
	}()
	buf := make([]byte, 8)
	var n int
	err = rc.Read(func(fd uintptr) bool {
		var rerr error
		n, rerr = syscall.Read(int(fd), buf)
		return rerr != syscall.EAGAIN
	})
	if err != nil || string(buf[:n]) != "hi" {
		t.Errorf("RawConn.Read: %q %v", buf[:n], err)
	}
}

func TestAPeerGoneHasNoAddressButReadsItsEnd(t *testing.T) {
	cl, sv := tcptest.Pair(t)
	cl.SetLinger(0)
	cl.Close() // a reset: the socket is no longer connected
	time.Sleep(50 * time.Millisecond)
	c := passed(t, sv)
	if a := c.RemoteAddr(); a != nil {
		t.Errorf("RemoteAddr %v of a reset connection, want nil", a)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("Read of a reset connection succeeded")
	}
}

func TestABlockingOrBadDescriptor(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fd, _ := syscall.Dup(int(r.Fd())) // Fd makes it blocking
	r.Close()
	c, err := New(fd) // made non-blocking: served through the poller
	if err != nil {
		t.Fatalf("New of a blocking descriptor: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read: %v, want the deadline", err)
	}
	c.Close()
	if _, err := New(-1); err == nil {
		t.Error("New(-1) succeeded")
	}
}

// After Close, every error is net.ErrClosed, as a *net.TCPConn's, and an
// address asked before stays.
func TestAfterCloseAsATCPConn(t *testing.T) {
	c, _ := pair(t)
	local := c.LocalAddr()
	c.Close()
	for name, err := range map[string]error{
		"SetReadDeadline":  c.SetReadDeadline(time.Now()),
		"SetWriteDeadline": c.SetWriteDeadline(time.Now()),
		"SetDeadline":      c.SetDeadline(time.Now()),
		"CloseWrite":       c.CloseWrite(),
	} {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close: %v, want net.ErrClosed", name, err)
		}
	}
	if c.LocalAddr() != local || c.RemoteAddr() == nil {
		t.Errorf("addresses after Close: %v %v, want %v and the peer's", c.LocalAddr(), c.RemoteAddr(), local)
	}
}
