package tcptest

import (
	"context"
	"io"
	"net"
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
