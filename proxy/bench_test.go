package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"smoothserve/accesslog"
	"smoothserve/internal/tcptest"
	"smoothserve/upstream"
)

// rawInstance answers every request with a fixed response, allocating
// nothing per request, so that a benchmark's allocations are the proxy's.
func rawInstance(b *testing.B, body []byte) string {
	b.Helper()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	resp = append(resp, body...)
	return tcptest.Serve(b, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 64<<10)
		for skipHead(br) {
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// skipHead reads through the blank line that ends a request head.
func skipHead(br *bufio.Reader) bool {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false
		}
		if len(line) <= 2 {
			return true
		}
	}
}

func benchmarkGet(b *testing.B, size int) { benchmarkGetLogged(b, size, nil) }

// benchProxy serves route r on a listener of its own, closed with b, and
// returns its address.
func benchProxy(b *testing.B, r Route) string {
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, []Route{r})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln, 1)
	b.Cleanup(s.Close)
	return ln.Addr().String()
}

func benchmarkGetLogged(b *testing.B, size int, log *accesslog.Log) {
	body := bytes.Repeat([]byte("x"), size)
	set := upstream.NewSet("bench", time.Second)
	for i := 0; i < 3; i++ {
		set.Add(upstream.NewBackend("bench", i, rawInstance(b, body)))
	}
	addr := benchProxy(b, Route{Port: 1, Set: set, AccessLog: log})

	req := []byte("GET /bench HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	benchClients(b, addr, req, size, func(br *bufio.Reader) error {
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			if len(line) <= 2 {
				break
			}
			if bytes.HasPrefix(line, []byte("Content-Length: ")) {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(line[16:])))
			}
		}
		if n != size {
			return fmt.Errorf("Content-Length %d, want %d", n, size)
		}
		_, err := br.Discard(n)
		return err
	})
}

// benchClients runs b's parallel clients, each on a keep-alive connection
// of its own to addr: req, then read reads its answer, an op each.
func benchClients(b *testing.B, addr string, req []byte, size int, read func(br *bufio.Reader) error) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReaderSize(c, 128<<10)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := read(br); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkProxyGet is one keep-alive GET through the proxy to one of three
// instances; allocs/op are the proxy's (the client and instance allocate
// nothing per request).
func BenchmarkProxyGet(b *testing.B) {
	for _, size := range []int{13, 1 << 10, 64 << 10} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) { benchmarkGet(b, size) })
	}
	// With the access log on: still nothing allocated per request.
	log, err := accesslog.Open(filepath.Join(b.TempDir(), "access.log"), accesslog.Combined)
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	b.Run("13B-logged", func(b *testing.B) { benchmarkGetLogged(b, 13, log) })
}

// BenchmarkTunnelEcho is one message each way through an open WebSocket
// tunnel (a round trip: the client writes size bytes, the instance echoes
// them); allocs/op are the proxy's.
func BenchmarkTunnelEcho(b *testing.B) {
	for _, size := range []int{64, 16 << 10} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) { benchmarkTunnel(b, size) })
	}
}

func benchmarkTunnel(b *testing.B, size int) {
	addr := tcptest.Serve(b, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 64<<10)
		if !skipHead(br) {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		buf := make([]byte, 64<<10)
		for {
			n, err := br.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	set := upstream.NewSet("bench", time.Second)
	set.Add(upstream.NewBackend("bench", 0, addr))
	addr = benchProxy(b, Route{Port: 1, Set: set})

	msg := bytes.Repeat([]byte("m"), size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReaderSize(c, 64<<10)
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: bench.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		if !skipHead(br) {
			b.Error("no 101")
			return
		}
		got := make([]byte, size)
		for pb.Next() {
			if _, err := c.Write(msg); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(br, got); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkProxyChunked is one keep-alive GET of a 1 MiB chunked body (16
// KiB chunks) through the proxy: a download, which reads on without a
// look at the socket before each wait (relay.go's streamPiece).
func BenchmarkProxyChunked(b *testing.B) {
	const size, chunk = 1 << 20, 16 << 10
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range size / chunk {
		resp = append(resp, strconv.FormatInt(chunk, 16)+"\r\n"...)
		resp = append(append(resp, bytes.Repeat([]byte("x"), chunk)...), "\r\n"...)
	}
	resp = append(resp, "0\r\n\r\n"...)
	set := upstream.NewSet("bench", time.Second)
	set.Add(upstream.NewBackend("bench", 0, tcptest.Serve(b, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 4<<10)
		for skipHead(br) {
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})))
	addr := benchProxy(b, Route{Port: 1, Set: set})
	req := []byte("GET /download HTTP/1.1\r\nHost: bench.test\r\n\r\n")
	benchClients(b, addr, req, size, func(br *bufio.Reader) error {
		if !skipHead(br) {
			return errors.New("no answer")
		}
		for got := 0; ; {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if n == 0 {
				if _, err := br.Discard(2); err != nil || got != size {
					return fmt.Errorf("%d bytes, %v; want %d", got, err, size)
				}
				return nil
			}
			if _, err := br.Discard(int(n) + 2); err != nil {
				return err
			}
			got += int(n)
		}
	})
}
