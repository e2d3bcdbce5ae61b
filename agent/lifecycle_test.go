package agent

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// noGoroutinesLeft waits until no more goroutines run than before.
func noGoroutinesLeft(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeReturns(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(r *running)
	}{
		{"context cancelled", func(r *running) { r.cancel() }},
		{"listener closed", func(r *running) { r.ln.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			r := startServe(t, func() State { return Serving }, nil)
			for range 3 {
				idleClient(t, r.addr)
			}
			tc.stop(r)
			// Well before answerTimeout: the idle clients' reads are cut.
			if err := r.wait(t, answerTimeout/2); err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
			if c, err := net.DialTimeout("tcp", r.addr, time.Second); err == nil {
				c.Close()
				t.Error("the listener still accepts after Serve returned")
			}
			noGoroutinesLeft(t, before)
		})
	}
}

func TestServeWithDoneContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Serve(ctx, ln, func() State { return Serving }); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second))
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Serve = %v, want the listener closed", err)
	}
}

func TestServeNilState(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Serve(context.Background(), ln, nil); err == nil {
		t.Error("Serve with a nil state func returned nil")
	}
}

// failingListener returns errs from Accept, in order, before passing on
// to the listener it wraps.
type failingListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestAcceptErrors(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	t.Run("out of descriptors is retried", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fl := &failingListener{Listener: ln, errs: []error{emfile, emfile, emfile}}
		r := startServeOn(t, fl, func() State { return Serving }, nil)
		if got := ask(t, r.addr, ""); got != "up ready\n" {
			t.Errorf("answer after EMFILE %q, want %q", got, "up ready\n")
		}
	})
	t.Run("other errors end Serve", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		boom := errors.New("boom")
		fl := &failingListener{Listener: ln, errs: []error{emfile, boom}}
		r := startServeOn(t, fl, func() State { return Serving }, nil)
		if err := r.wait(t, 5*time.Second); !errors.Is(err, boom) {
			t.Errorf("Serve = %v, want an error wrapping %v", err, boom)
		}
	})
}
