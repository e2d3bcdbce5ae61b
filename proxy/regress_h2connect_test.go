package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// HTTP/1.1 answers CONNECT 405 (errConnect); the bridge sends it on to
// the instance as "CONNECT host:port HTTP/1.1".
func TestRegressH2ConnectIsRefusedAsHTTP11(t *testing.T) {
	ln := mustListen(t)
	lines := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		lines <- line
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}()
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "a", ln.Addr().String())})
	pr, pw := io.Pipe()
	go func() { time.Sleep(100 * time.Millisecond); pw.Close() }()
	req, _ := http.NewRequest("CONNECT", "https://a.test/", pr)
	resp, err := f.client(true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case line := <-lines:
		t.Errorf("the instance was sent %q; answered %d (HTTP/1.1 answers 405)", strings.TrimSpace(line), resp.StatusCode)
	case <-time.After(500 * time.Millisecond):
		if resp.StatusCode != 405 {
			t.Errorf("%d, want 405", resp.StatusCode)
		}
	}
}
