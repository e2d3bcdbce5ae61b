package tcptest

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestPairIsOneConnection(t *testing.T) {
	client, server := Pair(t)
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(server, b); err != nil || b[0] != 'x' {
		t.Fatalf("server read %q, %v", b, err)
	}
	if client.LocalAddr().String() != server.RemoteAddr().String() {
		t.Errorf("client %s, server's peer %s: not the same connection", client.LocalAddr(), server.RemoteAddr())
	}
}

func TestAcceptAllSendsEachConnection(t *testing.T) {
	addr, accepted := AcceptAll(t)
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		select {
		case s := <-accepted:
			if s.RemoteAddr().String() != c.LocalAddr().String() {
				t.Errorf("accepted %s, dialed from %s", s.RemoteAddr(), c.LocalAddr())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a connection was not sent on accepted")
		}
	}
}

func TestServeAnswersEachConnectionAndClosesIt(t *testing.T) {
	addr := Serve(t, func(c net.Conn) { c.Write([]byte("hi")) })
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c) // to the close after handle returned
		c.Close()
		if err != nil || string(b) != "hi" {
			t.Fatalf("got %q %v, want hi and a close", b, err)
		}
	}
}

// Servers started on a SharedSocket each take connections, and a stopped
// one leaves the socket to the next: a client connects before, between
// and after the hand-overs.
func TestHandOversOnASharedSocket(t *testing.T) {
	s := Shared(t)
	served := 0
	start := func() func(context.Context) error {
		ln := s.Listener(t)
		served++
		me := byte('0' + served)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte{me})
				c.Close()
			}
		}()
		return func(context.Context) error { ln.Close(); <-done; return nil }
	}
	read := func() byte {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			t.Fatal(err)
		}
		return b[0]
	}
	stopLast := HandOvers(t, 2, 10*time.Millisecond, start)
	if got := read(); got != '3' {
		t.Errorf("after 2 hand-overs, answered by server %c, want 3", got)
	}
	stopLast(context.Background())
}

// Clients call until Stop and count the failures by error; GetOK wants a
// 200 read to its end.
func TestClientsCountWhatGetOKRefuses(t *testing.T) {
	addr := Serve(t, func(c net.Conn) {
		head := ReadHead(bufio.NewReader(c))
		status := "200 OK"
		if !strings.HasPrefix(head, "GET /ok ") {
			status = "404 Not Found"
		}
		io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	get := func(path string) func() error {
		return func() error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			return GetOK(c, "t", path)
		}
	}
	good, bad := StartClients(t, 2, get("/ok")), StartClients(t, 1, get("/missing"))
	time.Sleep(50 * time.Millisecond)
	g, b := good.Stop(), bad.Stop()
	if g.Asked == 0 || g.Failed != 0 {
		t.Errorf("GETs answered 200: %v, want some, none failed", g)
	}
	if b.Asked == 0 || b.Failed != b.Asked || b.Errs["GET /missing: 404 Not Found"] != int(b.Failed) {
		t.Errorf("GETs answered 404: %v, want every one failed with its status", b)
	}
	if again := good.Stop(); again.Asked != g.Asked {
		t.Errorf("a second Stop: %v, want the same tally %v", again, g)
	}
}
