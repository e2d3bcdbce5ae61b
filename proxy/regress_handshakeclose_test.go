package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A TLS connection accepted before Close (or Shutdown), whose handshake
// ends after it returned, was served all the same: it was not yet among
// the connections Close closes (found by an independent review).
func TestRegressAHandshakeThatEndsAfterCloseIsNotServed(t *testing.T) {
	for _, how := range []string{"Close", "Shutdown"} {
		t.Run(how, func(t *testing.T) {
			in := startInstance(t, "a", nil)
			f := startTLSProxy(t, Options{parkAfter: -1}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "a", in)})
			raw, err := net.Dial("tcp", f.tlsAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			time.Sleep(50 * time.Millisecond) // accepted; its handshake waits for our hello
			if how == "Close" {
				f.srv.Close()
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				t0 := time.Now()
				err := f.srv.Shutdown(ctx)
				cancel()
				t.Logf("Shutdown returned %v after %v", err, time.Since(t0))
			}
			c := tls.Client(raw, &tls.Config{RootCAs: f.roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if err := c.Handshake(); err != nil {
				t.Logf("handshake after %s: %v (closed: good)", how, err)
				return
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Logf("request after %s: %v (closed: good)", how, err)
				return
			}
			resp.Body.Close()
			t.Errorf("after %s returned, a connection accepted before it was still served: %s", how, resp.Status)
		})
	}
}
