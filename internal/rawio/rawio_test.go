package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

func conn(t *testing.T, c *net.TCPConn) *Conn {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var rc Conn
	rc.Init(raw)
	return &rc
}

// Read waits for the peer's bytes, returns what came, and io.EOF once the
// peer closed: a net.Conn's Read.
func TestReadWaitsThenEnds(t *testing.T) {
	c, peer := tcptest.Pair(t)
	go func() {
		time.Sleep(50 * time.Millisecond)
		peer.Write([]byte("hello"))
		time.Sleep(20 * time.Millisecond)
		peer.Close()
	}()
	rc := conn(t, c)
	t0 := time.Now()
	buf := make([]byte, 64)
	n, err := rc.Read(buf)
	if string(buf[:n]) != "hello" || err != nil || time.Since(t0) < 40*time.Millisecond {
		t.Fatalf("Read = %q, %v after %v; want hello, nil after the peer wrote (50 ms)", buf[:n], err, time.Since(t0))
	}
	if n, err := rc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
	if n, err := rc.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read of nothing = %d, %v; want 0, nil", n, err)
	}
}

// The read deadline ends the wait with the error net.Conn gives.
func TestReadDeadline(t *testing.T) {
	c, _ := tcptest.Pair(t)
	c.SetReadDeadline(time.Now().Add(80 * time.Millisecond))
	t0 := time.Now()
	n, err := conn(t, c).Read(make([]byte, 8))
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline = %d, %v; want 0 and a timeout", n, err)
	}
	if took := time.Since(t0); took < 60*time.Millisecond || took > 2*time.Second {
		t.Fatalf("Read returned after %v; want at the deadline (80 ms)", took)
	}
}

// Closing the connection ends a waiting Read with net.ErrClosed.
func TestCloseEndsRead(t *testing.T) {
	c, _ := tcptest.Pair(t)
	rc := conn(t, c)
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.Close()
	}()
	if _, err := rc.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a connection closed meanwhile = %v, want net.ErrClosed", err)
	}
}

// Write writes all of a buffer far larger than the socket's, waiting for
// the peer to read; the peer gets every byte in order.
func TestWriteAllOfIt(t *testing.T) {
	c, peer := tcptest.Pair(t)
	p := make([]byte, 8<<20)
	for i := range p {
		p[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	n, err := conn(t, c).Write(p)
	if n != len(p) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
	}
	c.CloseWrite()
	if b := <-got; !bytes.Equal(b, p) {
		t.Fatalf("the peer got %d bytes, not the %d written", len(b), len(p))
	}
}

// A peer that reads nothing: the write deadline ends the wait, with what
// was written.
func TestWriteDeadline(t *testing.T) {
	c, _ := tcptest.Pair(t)
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	p := make([]byte, 64<<20)
	n, err := conn(t, c).Write(p)
	if n <= 0 || n >= len(p) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that reads nothing = %d, %v; want part of %d and the deadline", n, err, len(p))
	}
}

// The peer reset the connection: Write says so.
func TestWriteToAResetConnection(t *testing.T) {
	c, peer := tcptest.Pair(t)
	peer.SetLinger(0)
	peer.Close() // RST
	rc := conn(t, c)
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = rc.Write([]byte("hello"))
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write on a reset connection = %v, want ECONNRESET or EPIPE", err)
	}
}

// A Read and a Write at once, as a tunnel's two directions do.
func TestReadAndWriteAtOnce(t *testing.T) {
	c, peer := tcptest.Pair(t)
	go io.Copy(peer, peer) // echo
	rc := conn(t, c)
	const total = 4 << 20
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for i := 0; i < total/len(buf); i++ {
			if _, err := rc.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	got, buf := 0, make([]byte, 16<<10)
	for got < total {
		n, err := rc.Read(buf)
		if err != nil {
			t.Fatalf("Read after %d of %d echoed bytes: %v", got, total, err)
		}
		got += n
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Read and Write allocate nothing: they are on every request's path.
func TestAllocatesNothing(t *testing.T) {
	c, peer := tcptest.Pair(t)
	go io.Copy(peer, peer)
	rc := conn(t, c)
	msg, buf := []byte("ping"), make([]byte, 64)
	if a := testing.AllocsPerRun(200, func() {
		rc.Write(msg)
		io.ReadFull(rc, buf[:len(msg)])
	}); a != 0 {
		t.Fatalf("a Write and a Read allocate %.1f times", a)
	}
}

// Peek looks without taking: the bytes are still there to Read.
func TestPeek(t *testing.T) {
	c, peer := tcptest.Pair(t)
	raw, _ := c.SyscallConn()
	var n int
	var e syscall.Errno
	b := make([]byte, 8)
	raw.Control(func(fd uintptr) { n, e = Peek(fd, b) })
	if e != syscall.EAGAIN {
		t.Fatalf("Peek of a quiet socket = %d, %v; want EAGAIN", n, e)
	}
	peer.Write([]byte("abc"))
	time.Sleep(20 * time.Millisecond)
	raw.Control(func(fd uintptr) { n, e = Peek(fd, b) })
	if e != 0 || string(b[:n]) != "abc" {
		t.Fatalf("Peek = %q, %v; want abc", b[:n], e)
	}
	if n, err := conn(t, c).Read(b); string(b[:n]) != "abc" || err != nil {
		t.Fatalf("Read after Peek = %q, %v", b[:n], err)
	}
}

// WaitReadable waits for the peer's bytes, or its close, and reads
// nothing; the deadline ends it as it ends a Read.
func TestWaitReadable(t *testing.T) {
	c, peer := tcptest.Pair(t)
	rc := conn(t, c)
	go func() {
		time.Sleep(50 * time.Millisecond)
		peer.Write([]byte("abc"))
	}()
	t0 := time.Now()
	if err := rc.WaitReadable(); err != nil || time.Since(t0) < 40*time.Millisecond {
		t.Fatalf("WaitReadable = %v after %v; want nil once the peer wrote (50 ms)", err, time.Since(t0))
	}
	if err := rc.WaitReadable(); err != nil { // the bytes are still there
		t.Fatalf("WaitReadable with bytes waiting = %v", err)
	}
	b := make([]byte, 8)
	if n, err := rc.Read(b); string(b[:n]) != "abc" || err != nil {
		t.Fatalf("Read after WaitReadable = %q, %v; want abc", b[:n], err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := rc.WaitReadable(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WaitReadable past the deadline = %v", err)
	}
	c.SetReadDeadline(time.Time{})
	peer.Close()
	if err := rc.WaitReadable(); err != nil {
		t.Fatalf("WaitReadable after the peer closed = %v; want nil (the Read says EOF)", err)
	}
	if n, err := rc.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("Read after the close = %d, %v; want EOF", n, err)
	}
	if a := testing.AllocsPerRun(100, func() { rc.WaitReadable() }); a != 0 {
		t.Fatalf("WaitReadable allocates %.1f times", a)
	}
}

// make test runs with -race, where the calls are syscall.Read and Write
// (sys_race.go); the binaries, and so the e2e tests, make them raw. This
// runs this package's tests once more without the race detector, so that
// the raw calls are tested here too.
func TestWithoutTheRaceDetector(t *testing.T) {
	if !raceEnabled {
		t.Skip("this run makes the calls raw already")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to run the tests with")
		}
	}
	cmd := exec.Command(gobin, "test", "-count=1", "-skip", "^TestWithoutTheRaceDetector$", "-v", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=") // no -race from GOFLAGS either
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestWriteAllOfIt")) {
		t.Fatalf("go test without -race: %v\n%s", err, out)
	}
}

// WaitReadable clears a reset it finds (the Read after it says io.EOF);
// WaitReadableStrict says it, as a Read would.
func TestWaitReadableStrictSaysAReset(t *testing.T) {
	for _, strict := range []bool{false, true} {
		c, peer := tcptest.Pair(t)
		rc := conn(t, c)
		peer.SetLinger(0)
		peer.Close() // RST
		time.Sleep(20 * time.Millisecond)
		wait := rc.WaitReadable
		if strict {
			wait = rc.WaitReadableStrict
		}
		err := wait()
		if strict {
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("WaitReadableStrict after a reset = %v, want ECONNRESET", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("WaitReadable after a reset = %v, want nil", err)
		}
		if n, err := rc.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("Read after WaitReadable found a reset = %d, %v; want EOF", n, err)
		}
	}
	c, peer := tcptest.Pair(t)
	rc := conn(t, c)
	peer.Write([]byte("abc"))
	time.Sleep(20 * time.Millisecond)
	if err := rc.WaitReadableStrict(); err != nil {
		t.Fatalf("WaitReadableStrict with bytes waiting = %v", err)
	}
	if a := testing.AllocsPerRun(100, func() { rc.WaitReadableStrict() }); a != 0 {
		t.Fatalf("WaitReadableStrict allocates %.1f times", a)
	}
}
