package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"smoothserve/upstream"
)

// BenchmarkH2Get is one GET over HTTP/2 (TLS) through the proxy's bridge
// to one of three instances, many streams on one connection at once.
// allocs/op include the Go HTTP/2 client's; the proxy's are those of
// BenchmarkH2Get's profile under proxy and net/http's server.
func BenchmarkH2Get(b *testing.B) {
	for _, size := range []int{13, 1 << 10} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) { benchmarkH2Get(b, size) })
	}
}

func benchmarkH2Get(b *testing.B, size int) {
	body := bytes.Repeat([]byte("x"), size)
	set := upstream.NewSet("bench", time.Second)
	for i := 0; i < 3; i++ {
		set.Add(upstream.NewBackend("bench", i, rawInstance(b, body)))
	}
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, []Route{{Port: 2, Set: set}})
	if err != nil {
		b.Fatal(err)
	}
	cert, _ := selfSigned(b, "bench.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.ServeTLS(ln, 2, &tls.Config{NextProtos: []string{"h2"}, Certificates: []tls.Certificate{cert}})
	b.Cleanup(s.Close)
	addr := ln.Addr().String()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
	}
	b.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest("GET", "https://bench.test/bench", nil)
	req.Header.Set("User-Agent", "bench")
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 2*size+512)
		for pb.Next() {
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.ReadFull(resp.Body, buf[:size])
			resp.Body.Close()
			if n != size || resp.ProtoMajor != 2 {
				b.Errorf("%d bytes over %s, want %d over HTTP/2", n, resp.Proto, size)
				return
			}
		}
	})
}
