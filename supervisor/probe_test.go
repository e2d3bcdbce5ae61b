package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/nofile"
	"smoothserve/internal/tcptest"
)

// answering listens on 127.0.0.1 and answers each connection with answer
// once it has read the request's head; heads receives each head, and
// closed is sent to once the prober has closed the connection.
func answering(t *testing.T, answer string) (addr string, heads <-chan string, closed <-chan struct{}) {
	t.Helper()
	hc, cc := make(chan string, 8), make(chan struct{}, 8)
	addr = tcptest.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		hc <- tcptest.ReadHead(br)
		c.Write([]byte(answer))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err != nil && !strings.Contains(err.Error(), "timeout") {
			cc <- struct{}{}
		}
	})
	return addr, hc, cc
}

func TestProbeAnswers(t *testing.T) {
	tests := []struct {
		name, answer string
		want         string // "" for ready, else a substring of the error
	}{
		{"200", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ""},
		{"204 then close", "HTTP/1.1 204 No Content\r\n\r\n", ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", ""},
		{"to the close", "HTTP/1.0 200 OK\r\n\r\n" + strings.Repeat("x", 100<<10), ""},
		{"interim first", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ""},
		{"a redirect is not ready", "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", "health check GET /healthz: 302 Found"},
		{"500", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", "health check GET /healthz: 500 Internal Server Error"},
		{"endless interim", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 20), "more than 8 interim answers"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n", "health check: malformed HTTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, heads, closed := answering(t, tt.answer)
			err := probe(context.Background(), addr, "/healthz", 2*time.Second)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("probe = %v, want %q", err, tt.want)
			}
			head := <-heads
			for _, line := range []string{"GET /healthz HTTP/1.1\r\n", "Host: " + addr + "\r\n", "Connection: close\r\n"} {
				if !strings.Contains(head, line) {
					t.Errorf("request %q lacks %q", head, line)
				}
			}
			select {
			case <-closed: // no connection left open in the instance
			case <-time.After(3 * time.Second):
				t.Error("the probe left its connection open")
			}
		})
	}
}

// An instance that takes the request and never answers fails the probe
// at its timeout, not later.
func TestProbeTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 4096))
			time.Sleep(5 * time.Second)
		}
	}()
	start := time.Now()
	err = probe(context.Background(), ln.Addr().String(), "/healthz", 300*time.Millisecond)
	if err == nil || !strings.HasPrefix(err.Error(), "health check: ") {
		t.Errorf("probe = %v, want a health check error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("probe took %v with a timeout of 300ms", took)
	}
}

// A port is in use where something listens on it, on its address or on
// all of them; a port whose listener has gone, even with connections in
// TIME_WAIT, is free, as a new listener could bind it.
func TestCheckPortFree(t *testing.T) {
	ctx := context.Background()
	for _, on := range []string{"127.0.0.1", "0.0.0.0"} {
		ln, err := net.Listen("tcp", on+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// A connection whose listener's side closes first: the port holds
		// a TIME_WAIT once the listener is gone.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPortFree(ctx, addr, port); !errors.Is(err, ErrPortInUse) {
			t.Errorf("a listener on %s: checkPortFree(%s) = %v, want ErrPortInUse", ln.Addr(), addr, err)
		}
		s.Close()
		c.Read(make([]byte, 1))
		c.Close()
		ln.Close()
		if err := checkPortFree(ctx, addr, port); err != nil {
			t.Errorf("after the listener on %s closed: checkPortFree(%s) = %v, want nil", on, addr, err)
		}
		again, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("checkPortFree said free, yet a listener cannot bind: %v", err)
		}
		again.Close()
	}
}

// fakeProcess is a process that runs until exit is closed.
type fakeProcess struct{ exit chan struct{} }

func (p fakeProcess) Pid() int                              { return 1 }
func (p fakeProcess) Done() <-chan struct{}                 { return p.exit }
func (p fakeProcess) Err() error                            { return nil }
func (p fakeProcess) WaitLeft(<-chan struct{}) (int, error) { return 0, nil }
func (p fakeProcess) Signal(syscall.Signal) error           { return nil }

// A started process is first probed one poll interval after its start
// (at once it could only refuse), or at half its start timeout if that is
// sooner; an adopted one, running already, is probed at once; one that
// exits is not waited for.
func TestWaitReadyFirstProbe(t *testing.T) {
	addr, heads, _ := answering(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	probed := func(what string) {
		t.Helper()
		select {
		case <-heads:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no probe reached the instance", what)
		}
	}
	running := fakeProcess{make(chan struct{})}
	start := time.Now()
	if err := waitReady(context.Background(), running, addr, "/healthz", 5*time.Second, pollInterval); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < pollInterval {
		t.Errorf("ready after %v, before the first poll interval (%v)", took, pollInterval)
	}
	probed("a new process")
	select {
	case h := <-heads:
		t.Errorf("a second probe %q, want one", h)
	default:
	}

	// Asked at once: long before a first probe of 2 s would be.
	start = time.Now()
	if err := waitReady(context.Background(), running, addr, "/healthz", 5*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= time.Second {
		t.Errorf("an adopted process asked at once was ready after %v", took)
	}
	probed("an adopted process")

	// A start timeout of 400 ms: the first probe at 200 ms, not at 10 s.
	start = time.Now()
	if err := waitReady(context.Background(), running, addr, "/healthz", 400*time.Millisecond, 10*time.Second); err != nil {
		t.Errorf("first probe at half a start timeout of 400ms: %v, want ready", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("ready after %v, before half the start timeout", took)
	}
	probed("a short start timeout")

	exit := make(chan struct{})
	close(exit)
	start = time.Now()
	err := waitReady(context.Background(), fakeProcess{exit}, addr, "/healthz", 5*time.Second, pollInterval)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Errorf("waitReady of an exited process = %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("an exited process was waited for %v", took)
	}
}

// answeringAndLimit is the address of an instance that answers 200, and
// this process's limit of open files. The instance answered a probe
// already: its accept loop waits in the poller from then on, where a soft
// limit of 0 does not reach it.
func answeringAndLimit(t *testing.T) (string, syscall.Rlimit) {
	addr, _, _ := answering(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	if err := probe(context.Background(), addr, "/healthz", time.Second); err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	return addr, lim
}

// Without a descriptor for it, a probe is not made, and says so: the port
// check does not take the failed dial for a free port, and the health
// check (checkHealth) counts it as no failure of the instance.
func TestProbesWithoutDescriptorsSaySo(t *testing.T) {
	addr, lim := answeringAndLimit(t)
	var portErr, probeErr error
	func() {
		// No new descriptor for this process while the soft limit is 0:
		// as short a while as can be.
		none := syscall.Rlimit{Cur: 0, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &none); err != nil {
			t.Fatal(err)
		}
		defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		portErr = checkPortFree(context.Background(), addr, 1)
		probeErr = probe(context.Background(), addr, "/healthz", time.Second)
	}()
	if !nofile.Exhausted(portErr) || !strings.Contains(portErr.Error(), "checking whether port 1 is free") {
		t.Errorf("checkPortFree without descriptors: %v, want it to say it could not check", portErr)
	}
	if !nofile.Exhausted(probeErr) {
		t.Errorf("probe without descriptors: %v, want EMFILE", probeErr)
	}
	if err := probe(context.Background(), addr, "/healthz", time.Second); err != nil {
		t.Errorf("probe with the limit back: %v", err)
	}
}

// A probe without a descriptor asks its context's room function (the
// proxy's, which closes idle connections) and dials again once it made
// room: here the room is the limit given back.
func TestAProbeWithoutDescriptorsAsksForRoom(t *testing.T) {
	addr, lim := answeringAndLimit(t)
	var asked []string
	room := func(at string, err error) bool {
		if !nofile.Exhausted(err) {
			t.Errorf("room asked after %v, want EMFILE", err)
		}
		asked = append(asked, at)
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) == nil
	}
	ctx := withRoom(context.Background(), room)
	none := syscall.Rlimit{Cur: 0, Max: lim.Max}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	for _, check := range []struct {
		name string
		run  func() error
	}{
		{"the port check", func() error {
			if err := checkPortFree(ctx, addr, 1); !errors.Is(err, ErrPortInUse) {
				return fmt.Errorf("checkPortFree = %v, want ErrPortInUse", err)
			}
			return nil
		}},
		{"a health check", func() error { return probe(ctx, addr, "/healthz", time.Second) }},
		{"a connect", func() error { return probe(ctx, addr, "", time.Second) }},
	} {
		asked = nil
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &none); err != nil {
			t.Fatal(err)
		}
		err := check.run()
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		if err != nil {
			t.Errorf("%s without descriptors, room made: %v", check.name, err)
		}
		if len(asked) != 1 || !strings.Contains(asked[0], addr) {
			t.Errorf("%s asked for room %q, want once, naming %s", check.name, asked, addr)
		}
	}
}
