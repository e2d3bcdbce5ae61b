package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestAnInstanceAnsweringBeforeTheBodyIsHeard: an instance that answers a
// large upload at once (413) and closes gets its answer to the client, not
// a 502; the client's connection closes after it.
func TestAnInstanceAnsweringBeforeTheBodyIsHeard(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")
		c.(*net.TCPConn).SetLinger(0) // gone: the rest of the body meets a reset
		return false
	})
	f := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", &instance{name: "s", ln: in.ln})})
	cl := dial(t, f.addr)
	body := bytes.Repeat([]byte("x"), 16<<20)
	go func() {
		fmt.Fprintf(cl.c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
		cl.c.Write(body)
	}()
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || string(got) != "too big\n" || !resp.Close {
		t.Fatalf("%d %q close=%v, want the instance's 413, and the connection closed", resp.StatusCode, got, resp.Close)
	}
}

func TestAnInstanceAnsweringBeforeTheBodyIsHeardOverHTTP2(t *testing.T) {
	in := startHandInstance(t, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")
		c.(*net.TCPConn).SetLinger(0)
		return false
	})
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", &instance{name: "s", ln: in.ln})})
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 256 { // 16 MiB, of unknown length: streamed
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	resp, err := f.client(true).Post("https://a.test/up", "application/octet-stream", pr)
	if err != nil {
		t.Fatalf("POST over HTTP/2: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || string(got) != "too big\n" {
		t.Fatalf("%d %q, want the instance's 413", resp.StatusCode, got)
	}
	pr.CloseWithError(io.ErrClosedPipe)
}
