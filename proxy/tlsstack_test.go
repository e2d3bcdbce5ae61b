package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"smoothserve/internal/stackmem"
)

// TestABusyTLSConnectionHoldsNoMoreStackThanAPlainOne: a TLS connection
// was served on the goroutine that made its handshake, which goes deep
// enough to leave a 16 KiB stack, four times what a connection between two
// requests needs. 300 connections of each kind, one request each, not
// parked: the stack a connection holds, over TLS and not (the race
// detector's frames are larger: the plain one is the measure).
func TestABusyTLSConnectionHoldsNoMoreStackThanAPlainOne(t *testing.T) {
	if !stackmem.InProcessOfItsOwn(t) {
		return
	}
	in := startInstance(t, "a", nil)
	f := startTLSProxy(t, Options{parkAfter: -1}, Route{Port: 1, Set: setOf(t, "a", in)},
		Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
	plain := stackPerConn(t, f.fixture, func() (net.Conn, error) { return net.Dial("tcp", f.addr) })
	overTLS := stackPerConn(t, f.fixture, func() (net.Conn, error) {
		return tls.Dial("tcp", f.tlsAddr, &tls.Config{RootCAs: f.roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	})
	t.Logf("stack a busy connection: %d bytes plain, %d over TLS", plain, overTLS)
	if overTLS*4 > plain*5 {
		t.Errorf("a busy TLS connection holds %d bytes of stack, a plain one %d", overTLS, plain)
	}
}

// stackPerConn is the stack f's proxy holds a connection, of 300 that dial
// made, each after one request. They are closed, and gone from the proxy,
// when it returns.
func stackPerConn(t *testing.T, f *fixture, dial func() (net.Conn, error)) int64 {
	const n = 300
	before := stackmem.InUse()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		deadline := time.Now().Add(5 * time.Second)
		for open(f) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := open(f); n > 0 {
			t.Fatalf("%d connections still open in the proxy 5 s after their clients closed them", n)
		}
	}()
	for range n {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	return (int64(stackmem.InUse()) - int64(before)) / n
}

// open is how many client connections f's proxy has open.
func open(f *fixture) int {
	n := 0
	for _, c := range f.srv.OpenConnections() {
		n += c
	}
	return n
}
