package proxy

// Test kit for the hardening tests and the fuzz targets: instances that
// speak raw bytes and record what they receive (here), and a strict reader
// of what the client gets (strict_test.go).

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/upstream"
)

// scripted is an instance on 127.0.0.1:0 whose every connection is handed
// to a script that reads requests (recording them) and writes raw bytes.
//
// Ownership: reqs and conns are guarded by mu; each connection belongs to
// its script's goroutine.
type scripted struct {
	ln      net.Listener
	script  func(sc *scriptConn)
	accepts atomic.Int64

	mu    sync.Mutex
	reqs  []seenRequest
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// seenRequest is one request as an instance received it.
type seenRequest struct {
	head    []byte        // the head as it came
	req     *http.Request // net/http's reading of head; nil if it refused it
	err     error         // why net/http refused it
	body    []byte        // the body, read by the framing net/http saw
	bodyErr error         // the body did not come whole
}

// scriptConn is one connection to a scripted instance.
type scriptConn struct {
	net.Conn
	br *bufio.Reader
	in *scripted
	n  int // requests read on it so far
}

// startScripted starts an instance running script on each connection; all
// of it stops when the test ends.
func startScripted(tb testing.TB, script func(sc *scriptConn)) *scripted {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	in := &scripted{ln: ln, script: script, conns: make(map[net.Conn]struct{})}
	in.wg.Add(1)
	go in.accept()
	tb.Cleanup(in.close)
	return in
}

func (in *scripted) accept() {
	defer in.wg.Done()
	for {
		c, err := in.ln.Accept()
		if err != nil {
			return
		}
		in.accepts.Add(1)
		in.mu.Lock()
		if in.conns == nil { // closed
			in.mu.Unlock()
			c.Close()
			return
		}
		in.conns[c] = struct{}{}
		in.wg.Add(1)
		in.mu.Unlock()
		go func() {
			defer in.wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			in.script(&scriptConn{Conn: c, br: bufio.NewReader(c), in: in})
			in.mu.Lock()
			delete(in.conns, c)
			in.mu.Unlock()
		}()
	}
}

// close stops accepting, closes every connection and waits for the scripts.
func (in *scripted) close() {
	in.ln.Close()
	in.mu.Lock()
	for c := range in.conns {
		c.Close()
	}
	in.conns = nil
	in.mu.Unlock()
	in.wg.Wait()
}

func (in *scripted) addr() string { return in.ln.Addr().String() }

// requests returns what the instance received so far.
func (in *scripted) requests() []seenRequest {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]seenRequest(nil), in.reqs...)
}

// set returns a rotation of this one instance that waits for an instance
// for startTimeout.
func (in *scripted) set(name string, startTimeout time.Duration) *upstream.Set {
	set := upstream.NewSet(name, startTimeout)
	set.Add(upstream.NewBackend(name, 0, in.addr()))
	return set
}

// next reads and records one request, body included; it fails when the
// connection ends or the head is not HTTP as net/http reads it.
func (sc *scriptConn) next() (*seenRequest, error) {
	head, err := readRawHead(sc.br, 1<<20)
	if err != nil {
		return nil, err
	}
	sc.n++
	seen := seenRequest{head: head}
	seen.req, seen.err = http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if seen.err == nil {
		seen.body, seen.bodyErr = readFramedBody(sc.br, seen.req.TransferEncoding, seen.req.ContentLength)
	}
	sc.in.mu.Lock()
	sc.in.reqs = append(sc.in.reqs, seen)
	sc.in.mu.Unlock()
	if seen.err != nil {
		return &seen, seen.err
	}
	return &seen, seen.bodyErr
}

// readRawHead reads through the blank line that ends a message head.
func readRawHead(br *bufio.Reader, max int) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if len(head) > max {
			return head, errors.New("head too large")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return head, err
		}
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return head, nil
		}
	}
}

// readFramedBody reads a body framed by a chunked coding or a length (-1: none).
func readFramedBody(br *bufio.Reader, te []string, n int64) ([]byte, error) {
	if len(te) > 0 {
		body, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err != nil {
			return body, err
		}
		_, err = readRawHead(br, 64<<10) // the trailer section
		return body, err
	}
	if n <= 0 {
		return nil, nil
	}
	body := make([]byte, n)
	k, err := io.ReadFull(br, body)
	return body[:k], err
}

// answerEach is a script that answers every request with resp.
func answerEach(resp string) func(sc *scriptConn) {
	return func(sc *scriptConn) {
		for {
			if _, err := sc.next(); err != nil {
				return
			}
			if _, err := io.WriteString(sc, resp); err != nil {
				return
			}
		}
	}
}

// ok200 is a well-formed answer with a body of "ok".
const ok200 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
