package tcptest

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
)

// Pair is a TCP connection on 127.0.0.1: the client's end and the server's
// (accepted) end.
func Pair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// AcceptAll listens on 127.0.0.1, as an instance would, and sends every
// connection it accepts on accepted (which holds 64 unread), holding it
// open until the test ends.
func AcceptAll(t testing.TB) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 64)
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			ch <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// Serve listens on 127.0.0.1, as an instance would, and serves every
// connection it accepts with handle on a goroutine of its own, closing the
// connection when handle returns, or when the test ends, whichever comes
// first. It returns the address.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = struct{}{}
			mu.Unlock()
			go func() {
				defer func() {
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range open {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// ReadHead reads an HTTP message head from br: its lines up to and with
// the blank one that ends it, or what came before an error.
func ReadHead(br *bufio.Reader) string {
	var head strings.Builder
	for {
		l, err := br.ReadString('\n')
		head.WriteString(l)
		if err != nil || l == "\r\n" || l == "\n" {
			return head.String()
		}
	}
}
