package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"smoothserve/internal/tcptest"
)

// At an upgrade the old process shuts down while the new one accepts on
// the same sockets and clients keep opening connections. Every connection
// the old one accepted is its to answer: one its accept loop took as the
// listener closed, one whose TLS handshake ends after Shutdown began (HTTP/
// 1.1 or HTTP/2), and one that reaches the HTTP/2 server as it sends its
// GOAWAYs.
func TestNewConnectionsAtAHandOverAreAnswered(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	set := setOf(t, "s", in)
	cert, _ := selfSigned(t, "a.test")
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, Certificates: []tls.Certificate{cert}}
	plain, secure := tcptest.Shared(t), tcptest.Shared(t)
	start := func() func(context.Context) error {
		s, err := New(Options{Logger: slog.New(slog.DiscardHandler)}, []Route{{Port: 1, Set: set}, {Port: 2, Set: set}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		go s.Serve(plain.Listener(t), 1)
		go s.ServeTLS(secure.Listener(t), 2, cfg)
		return s.Shutdown
	}
	kinds := []struct {
		name string
		once func() error
	}{
		{"plain HTTP/1.1", func() error {
			c, err := net.Dial("tcp", plain.Addr)
			if err != nil {
				return err
			}
			return tcptest.GetOK(c, "a.test", "/")
		}},
		{"HTTP/1.1 over TLS", func() error {
			c, err := tls.Dial("tcp", secure.Addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}, ServerName: "a.test"})
			if err != nil {
				return err
			}
			return tcptest.GetOK(c, "a.test", "/")
		}},
		{"HTTP/2", func() error {
			c, err := openH2(secure.Addr) // a GET, answered 200
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = errors.New("no answer within 30 s")
				}
				return err
			}
			return c.Close()
		}},
	}
	loads := make([]*tcptest.Clients, len(kinds))
	for i, k := range kinds {
		loads[i] = tcptest.StartClients(t, 2, k.once)
	}
	const handOvers = 20
	tcptest.HandOvers(t, handOvers, 20*time.Millisecond, start) // the last is closed at the test's end
	for i, k := range kinds {
		got := loads[i].Stop()
		t.Logf("%s, %d hand-overs, new connections: %v", k.name, handOvers, got)
		if got.Failed > 0 || got.Asked == 0 {
			t.Errorf("%s, through %d hand-overs, new connections: %v", k.name, handOvers, got)
		}
	}
}

// A client that connects to the HTTPS port and sends nothing holds a
// Shutdown for ShutdownGrace, as a plain one does, not for HeaderTimeout;
// so does one that chose HTTP/2 and sends no preface (net/http waits 10 s
// for it), with h2Settle more. One whose handshake ends within the grace
// is served.
func TestAHandshakeGetsShutdownsGrace(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{HeaderTimeout: 20 * time.Second, ShutdownGrace: 300 * time.Millisecond},
		Route{Port: 2, Set: setOf(t, "s", in)})
	silent, err := net.Dial("tcp", f.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silentH2, err := tls.Dial("tcp", f.tlsAddr, &tls.Config{RootCAs: f.roots, ServerName: "a.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer silentH2.Close()
	late, err := net.Dial("tcp", f.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	time.Sleep(50 * time.Millisecond) // all accepted; two in their handshakes
	began := time.Now()
	shut := make(chan error, 1)
	go func() { shut <- f.srv.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	c := tls.Client(late, &tls.Config{RootCAs: f.roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	if err := tcptest.GetOK(c, "a.test", "/"); err != nil {
		t.Errorf("a handshake that began before Shutdown and ended within its grace: %v", err)
	}
	select {
	case err := <-shut:
		if took := time.Since(began); err != nil || took > 5*time.Second {
			t.Errorf("Shutdown: %v after %v; want nil within the grace (300 ms) and a margin", err, took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Shutdown still waits 15 s later for clients that sent nothing")
	}
	silentH2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, silentH2); errors.Is(err, os.ErrDeadlineExceeded) { // the server's SETTINGS, then its end
		t.Errorf("the HTTP/2 connection that sent no preface after Shutdown: %v, want it closed", err)
	}
}
