package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/accesslog"
	"smoothserve/upstream"
)

// Quiet tunnels parked (tunnel.go): their goroutines end, and bytes from
// either side, the end of either, an upgrade's hand-over and Close take
// them up as before.

// tunnelInstance answers each request with a 101 and then echoes each line
// as "echo:LINE", but for lines beginning with "q", which it only counts;
// when the client ends its side, it says "bye" and closes. Its ends of the
// tunnels come on ends, for a test to write to or close.
type tunnelInstance struct {
	*handInstance
	ends  chan net.Conn
	quiet atomic.Int64 // "q" lines read
	byes  atomic.Int64 // tunnels whose client ended its side
}

func startTunnelInstance(t *testing.T) *tunnelInstance {
	ti := &tunnelInstance{ends: make(chan net.Conn, 64)}
	ti.handInstance = startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		ti.ends <- c
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if errors.Is(err, io.EOF) && line == "" {
				ti.byes.Add(1)
				io.WriteString(c, "bye\n")
				return false
			}
			if err != nil {
				return false
			}
			if strings.HasPrefix(line, "q") {
				ti.quiet.Add(1)
				continue
			}
			if _, err := io.WriteString(c, "echo:"+line); err != nil {
				return false
			}
		}
	})
	return ti
}

// end is the instance's end of the next tunnel opened.
func (ti *tunnelInstance) end(t *testing.T) net.Conn {
	t.Helper()
	return within5s(t, ti.ends, "a tunnel reached the instance")
}

// within5s receives from ch, or fails t after 5 s waiting for what.
func within5s[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// upgradeTunnel asks addr for a WebSocket upgrade and checks the 101.
func upgradeTunnel(t *testing.T, addr string) *client {
	t.Helper()
	cl := dial(t, addr)
	io.WriteString(cl.c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return cl
}

// expectLine reads the client's next line, within 2 s.
func expectLine(t *testing.T, cl *client, want string) {
	t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := cl.br.ReadString('\n'); line != want || err != nil {
		t.Fatalf("through the tunnel: %q %v, want %q", line, err, want)
	}
}

func TestQuietTunnelsAreParkedAndTakenUp(t *testing.T) {
	in := startTunnelInstance(t)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	const n = 8
	var cls [n]*client
	var ends [n]net.Conn
	// Counted before: on a loaded machine the first tunnels may park
	// before the last is open.
	before := runtime.NumGoroutine()
	for i := range cls {
		cls[i] = upgradeTunnel(t, f.addr)
		ends[i] = in.end(t)
		echo(t, cls[i].c, cls[i].br, "hello")
	}
	waitParked(t, f.srv, n)
	// Each tunnel had two goroutines here (and one in the instance);
	// parked, none (the parker has one, and its trim may run).
	waitUntil(t, "the tunnels' goroutines gone", func() bool { return runtime.NumGoroutine() <= before+n+2 })

	// The client sends: taken up, and parked again once quiet.
	for round := range 3 {
		echo(t, cls[0].c, cls[0].br, fmt.Sprintf("round %d", round))
		waitParked(t, f.srv, n)
	}
	// The instance sends first.
	io.WriteString(ends[1], "news\n")
	expectLine(t, cls[1], "news\n")
	waitParked(t, f.srv, n)

	// The instance closes a parked tunnel: the client's end closes too.
	ends[2].Close()
	expectClosed(t, cls[2], "a parked tunnel its instance closed")

	// The client ends its side of a parked tunnel: the instance hears of
	// it, and its last words still reach the client.
	cls[3].c.(*net.TCPConn).CloseWrite()
	expectLine(t, cls[3], "bye\n")
	expectClosed(t, cls[3], "a tunnel both sides ended")

	waitUntil(t, "the others left, parked", func() bool { return f.srv.connCount() == n-2 && f.srv.parker.count() == n-2 })
	echo(t, cls[0].c, cls[0].br, "still")
	echo(t, cls[1].c, cls[1].br, "still")
}

// TestTunnelBusyOneWayIsNotParked: a tunnel whose bytes go one way only
// is never parked, and nothing of them is lost or held back.
func TestTunnelBusyOneWayIsNotParked(t *testing.T) {
	in := startTunnelInstance(t)
	// A tunnel quiet both ways for half of parkAfter may park. A loaded
	// machine can stretch the 10 ms between two lines past parkOpts' 25
	// ms; here it is 100 ms. Each way lasts 400 ms, past parkAfter: the
	// quiet way alone would park it.
	f := startProxy(t, Options{parkAfter: 200 * time.Millisecond}, Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	cl := upgradeTunnel(t, f.addr)
	end := in.end(t)
	const lines = 40
	var parked atomic.Int64
	watch := func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				parked.Add(int64(f.srv.parker.count()))
			}
		}
	}

	// The instance sends, the client only reads.
	stop := make(chan struct{})
	go watch(stop)
	go func() {
		for i := range lines {
			fmt.Fprintf(end, "push %d\n", i)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for i := range lines {
		expectLine(t, cl, fmt.Sprintf("push %d\n", i))
	}
	close(stop)

	// The client sends, the instance only reads.
	stop = make(chan struct{})
	go watch(stop)
	for i := range lines {
		fmt.Fprintf(cl.c, "q%d\n", i)
		time.Sleep(10 * time.Millisecond)
	}
	waitUntil(t, "the instance read every line", func() bool { return in.quiet.Load() == lines })
	close(stop)
	if n := parked.Load(); n != 0 {
		t.Errorf("a tunnel busy one way was seen parked %d times", n)
	}
	echo(t, cl.c, cl.br, "after")
}

// TestParkedTunnelIsPassed: at an upgrade, a parked tunnel is passed as it
// is; the taking process relays it, and parks it in turn once quiet. One
// whose passing fails goes on here.
func TestParkedTunnelIsPassed(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			in := startTunnelInstance(t)
			up := startUpgradePair(t, in.ln.Addr().String())
			old, next := up.old, up.next
			cl := upgradeTunnel(t, old.addr)
			end := in.end(t)
			echo(t, cl.c, cl.br, "before")
			waitParked(t, old.srv, 1)

			endPass := up.passAll(t, fail)
			if !fail {
				waitUntil(t, "the tunnel passed", func() bool { return old.srv.PassStats().Tunnels == 1 })
				waitUntil(t, "the old process done with it", func() bool { return old.srv.connCount() == 0 })
			}
			echo(t, cl.c, cl.br, "after")
			io.WriteString(end, "news\n")
			expectLine(t, cl, "news\n")
			if fail {
				if st := old.srv.PassStats(); st.Failed != 1 || st.Tunnels != 0 {
					t.Errorf("PassStats %+v, want one failed", st)
				}
				endPass() // PassConnections' time is up: Close ends what is left
				expectClosed(t, cl, "a tunnel kept here at Close")
				return
			}
			waitParked(t, next.srv, 1)
			echo(t, cl.c, cl.br, "parked again")
			if n := in.conns.Load(); n != 1 {
				t.Errorf("the instance saw %d connections, want its one", n)
			}
		})
	}
}

// upgradePair is an upgrade's two proxies in front of one instance, each
// parking after 50 ms: the old one, which passes, and the next one.
type upgradePair struct {
	old, next *fixture
	nextSet   *upstream.Set
}

func startUpgradePair(t *testing.T, addr string) *upgradePair {
	nextSet := setOfAddr(t, "s", addr)
	return &upgradePair{
		old:     startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", addr)}),
		next:    startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: nextSet}),
		nextSet: nextSet,
	}
}

// passAll begins the old proxy's PassConnections to the next one, or, if
// fail, to a PassFunc that refuses all. Its time is up when the test calls
// the returned end (or at the test's end), not on a timer a loaded machine
// could outrun; end returns once PassConnections has.
func (up *upgradePair) passAll(t *testing.T, fail bool) (end func()) {
	var passed atomic.Int64
	pass := passToSet(up.next.srv, up.nextSet, &passed)
	if fail {
		pass = func(*Handover) error { return errors.New("refused") }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		up.old.srv.PassConnections(ctx, pass)
		close(done)
	}()
	end = func() { cancel(); <-done }
	t.Cleanup(end)
	return end
}

// openAccessLog opens an access log (combined) in the test's directory.
func openAccessLog(t *testing.T) (*accesslog.Log, string) {
	path := filepath.Join(t.TempDir(), "access.log")
	log, err := accesslog.Open(path, accesslog.Combined)
	if err != nil {
		t.Fatal(err)
	}
	return log, path
}

// expectOneLogLine closes log and checks that its file at path holds one
// line, and that it has want.
func expectOneLogLine(t *testing.T, log *accesslog.Log, path, want string) {
	t.Helper()
	log.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Fatalf("the access log: %q, want one line with %q", b, want)
	}
}

// TestCloseEndsParkedTunnels: Close closes a parked tunnel's both ends
// (the instance reads the end of its client's side);
// Shutdown leaves it to its instance, as a tunnel not parked.
func TestCloseEndsParkedTunnels(t *testing.T) {
	in := startTunnelInstance(t)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	cl := upgradeTunnel(t, f.addr)
	in.end(t)
	echo(t, cl.c, cl.br, "hello")
	waitParked(t, f.srv, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	echo(t, cl.c, cl.br, "after Shutdown")
	waitParked(t, f.srv, 1)
	f.srv.Close()
	expectClosed(t, cl, "a parked tunnel at Close")
	waitUntil(t, "the instance's end closed", func() bool { return in.byes.Load() == 1 })
	waitUntil(t, "nothing left", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
}

// TestTunnelIsLoggedOnceAtItsEnd: a WebSocket's access log line is written
// once, when the tunnel ends, whether it was parked on the way or not.
func TestTunnelIsLoggedOnceAtItsEnd(t *testing.T) {
	for _, park := range []time.Duration{-1, 50 * time.Millisecond} {
		t.Run(fmt.Sprintf("parkAfter=%v", park), func(t *testing.T) {
			log, path := openAccessLog(t)
			in := startTunnelInstance(t)
			f := startProxy(t, Options{parkAfter: park}, Route{Port: 1, Set: setOfAddr(t, "web", in.ln.Addr().String()), AccessLog: log})
			cl := upgradeTunnel(t, f.addr)
			end := in.end(t)
			echo(t, cl.c, cl.br, "hello")
			time.Sleep(150 * time.Millisecond)
			if park > 0 {
				waitParked(t, f.srv, 1)
			}
			end.Close()
			expectClosed(t, cl, "a tunnel its instance closed")
			waitUntil(t, "the tunnel forgotten", func() bool { return f.srv.connCount() == 0 })
			expectOneLogLine(t, log, path, `"GET /ws HTTP/1.1" 101 `)
		})
	}
}
