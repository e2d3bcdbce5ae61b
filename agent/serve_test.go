package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// running is a Serve started by startServe.
type running struct {
	addr   string
	ln     net.Listener
	cancel context.CancelFunc
	done   chan error // receives Serve's result
}

// startServe runs Serve (lim nil) or serve with lim on a fresh listener on
// 127.0.0.1:0 and stops it at cleanup.
func startServe(t *testing.T, state func() State, lim *limits) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServeOn(t, ln, state, lim)
}

func startServeOn(t *testing.T, ln net.Listener, state func() State, lim *limits) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{addr: ln.Addr().String(), ln: ln, cancel: cancel, done: make(chan error, 1)}
	go func() {
		if lim == nil {
			r.done <- Serve(ctx, ln, state)
		} else {
			r.done <- serve(ctx, ln, state, *lim)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5s of cancel")
		}
	})
	return r
}

// wait returns Serve's result, failing the test if it takes over d.
func (r *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for cleanup
		return err
	case <-time.After(d):
		t.Fatalf("Serve did not return within %v", d)
		return nil
	}
}

// ask connects to addr, sends send, and returns everything read until the
// agent closes.
func ask(t *testing.T, addr, send string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatalf("sending %q: %v", send, err)
		}
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer: %v (read %q)", err, b)
	}
	return string(b)
}

// idleClient connects, reads the answer and then neither closes nor sends
// anything.
func idleClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || !strings.HasSuffix(string(buf[:n]), "\n") {
		t.Fatalf("idle client: read %q, %v", buf[:n], err)
	}
	return c
}

func TestAnswerLines(t *testing.T) {
	for _, tc := range []struct {
		state State
		name  string
		want  string
	}{
		{Serving, "serving", "up ready\n"},
		{Draining, "draining", "drain\n"},
		{Maintenance, "maintenance", "maint\n"},
		{State(42), "State(42)", "maint\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.state.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			r := startServe(t, func() State { return tc.state }, nil)
			if got := ask(t, r.addr, ""); got != tc.want {
				t.Errorf("answer %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNextConnectionSeesStateChange(t *testing.T) {
	var state atomic.Int64
	r := startServe(t, func() State { return State(state.Load()) }, nil)
	for _, s := range []State{Serving, Draining, Serving, Maintenance, Serving} {
		state.Store(int64(s))
		if got, want := ask(t, r.addr, ""), s.line(); got != want {
			t.Errorf("after switching to %v: answer %q, want %q", s, got, want)
		}
	}
}

func TestClientInput(t *testing.T) {
	r := startServe(t, func() State { return Draining }, nil)
	for _, tc := range []struct{ name, send string }{
		{"agent-send line", "be_web/web1\n"},
		{"no newline", "be_web/web1"},
		{"garbage", strings.Repeat("\x00\xff\r\n up,down maint 75% #\x1b[2J", 300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// ask fails on a reset: the agent reads what it is sent.
			if got := ask(t, r.addr, tc.send); got != "drain\n" {
				t.Errorf("answer %q, want %q", got, "drain\n")
			}
		})
	}
}

func TestAnswerDoesNotWaitForInput(t *testing.T) {
	r := startServe(t, func() State { return Serving }, nil)
	c, err := net.DialTimeout("tcp", r.addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(start.Add(answerTimeout))
	// Sends nothing and does not close: the line and its end (the agent's
	// half-close) still come at once, not after answerTimeout.
	b, err := io.ReadAll(c)
	if elapsed := time.Since(start); err != nil || string(b) != "up ready\n" || elapsed > answerTimeout/2 {
		t.Errorf("read %q, %v after %v; want %q and EOF at once", b, err, elapsed, "up ready\n")
	}
}

func TestFloodingClientIsCut(t *testing.T) {
	lim := limits{timeout: 5 * time.Second, maxConns: 4}
	r := startServe(t, func() State { return Serving }, &lim)
	c, err := net.DialTimeout("tcp", r.addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(lim.timeout))
	junk := []byte(strings.Repeat("x", 4096))
	var sent int
	for {
		n, err := c.Write(junk)
		sent += n
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the agent still accepted input after %d bytes and %v", sent, lim.timeout)
			}
			break // closed by the agent past maxDiscard
		}
	}
	t.Logf("cut after %d bytes", sent)
	if got := ask(t, r.addr, ""); got != "up ready\n" {
		t.Errorf("next client got %q", got)
	}
}

func TestIdleClientsHoldSlotsOnlyUntilTimeout(t *testing.T) {
	lim := limits{timeout: 500 * time.Millisecond, maxConns: 4}
	r := startServe(t, func() State { return Maintenance }, &lim)
	for range lim.maxConns {
		idleClient(t, r.addr)
	}
	// Every slot is held: the next client is accepted once the agent gives
	// up on an idle one.
	start := time.Now()
	got := ask(t, r.addr, "")
	elapsed := time.Since(start)
	if got != "maint\n" {
		t.Errorf("answer %q, want %q", got, "maint\n")
	}
	if elapsed < lim.timeout/2 || elapsed > lim.timeout+2*time.Second {
		t.Errorf("answered after %v with every slot held; want about %v", elapsed, lim.timeout)
	}
}
