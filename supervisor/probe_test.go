package supervisor

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

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
