package loadclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"
)

// dialBackoff is the pause after a failed dial, so that a server that is
// down is not hammered with a million failures a second.
const dialBackoff = 10 * time.Millisecond

// maxResponseBody bounds what a response may carry, over the largest Post.
const maxResponseBody = 64 << 20

// worker drives one connection. Only its own goroutine touches it.
type worker struct {
	id    int
	cfg   *Config
	tally *tally
	src   *rand.ChaCha8 // the Post bodies
	rng   *rand.Rand    // kinds and body sizes

	conn   net.Conn // nil between a close and the next request
	br     *bufio.Reader
	bw     *bufio.Writer
	dialed bool   // a conn was opened before: the next dial is a reconnect
	body   []byte // the Post body buffer, PostMaxBytes long
}

func newWorker(id int, cfg *Config, t *tally, seed uint64) *worker {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(id))
	src := rand.NewChaCha8(key)
	return &worker{
		id:    id,
		cfg:   cfg,
		tally: t,
		src:   src,
		rng:   rand.New(rand.NewPCG(seed, uint64(id))),
		body:  make([]byte, cfg.PostMaxBytes),
	}
}

// run sends requests one after another until ctx is done or reserve says
// the Count is used up. ctx is checked only between requests: the one in
// flight is always finished and judged.
func (w *worker) run(ctx context.Context, reserve func() bool) {
	defer w.closeConn()
	for ctx.Err() == nil && reserve() {
		kind := w.cfg.Mix[w.rng.IntN(len(w.cfg.Mix))]
		began := time.Now()
		pid, err := w.do(kind)
		w.tally.record(kind, w.id, pid, time.Since(began), err)
		var dialErr *dialError
		if errors.As(err, &dialErr) {
			sleep(ctx, dialBackoff)
		} else if w.cfg.Pause > 0 {
			sleep(ctx, w.cfg.PauseFrom+time.Duration(w.rng.Int64N(int64(w.cfg.Pause-w.cfg.PauseFrom)+1)))
		}
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// do sends one request of kind and judges its response. It returns the pid
// the body named, if any, and why the request failed, if it did.
func (w *worker) do(kind Kind) (pid string, err error) {
	deadline := time.Now().Add(w.cfg.Timeout)
	if w.conn == nil {
		conn, err := w.dial(deadline)
		if err != nil {
			return "", &dialError{err}
		}
		if w.dialed {
			w.tally.reconnected()
		}
		w.dialed = true
		w.conn = conn
		w.br = bufio.NewReaderSize(conn, 32<<10)
		w.bw = bufio.NewWriterSize(conn, 32<<10)
	}
	w.conn.SetDeadline(deadline)

	var post []byte
	switch kind {
	case Get:
		fmt.Fprintf(w.bw, "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: smoothserve-loadclient\r\n\r\n", w.cfg.Host)
	case Slow:
		fmt.Fprintf(w.bw, "GET /slow?ms=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: smoothserve-loadclient\r\n\r\n", w.cfg.SlowMS, w.cfg.Host)
	case Stream:
		fmt.Fprintf(w.bw, "GET /stream?lines=%d&ms=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: smoothserve-loadclient\r\n\r\n", w.cfg.StreamLines, w.cfg.StreamMS, w.cfg.Host)
	case Post:
		post = w.body[:w.rng.IntN(w.cfg.PostMaxBytes+1)]
		w.src.Read(post)
		fmt.Fprintf(w.bw, "POST /echo HTTP/1.1\r\nHost: %s\r\nUser-Agent: smoothserve-loadclient\r\n"+
			"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", w.cfg.Host, len(post))
		w.bw.Write(post)
	}
	if err := w.bw.Flush(); err != nil {
		w.closeConn()
		return "", w.explain("writing request", err)
	}

	resp, err := readResponse(w.br, maxResponseBody)
	if err != nil {
		w.closeConn()
		return "", w.explain("reading response", err)
	}
	if resp.close {
		w.closeConn()
	}
	if resp.status < 200 || resp.status > 299 {
		return "", fmt.Errorf("status %d, body %.100q", resp.status, resp.body)
	}
	switch kind {
	case Get:
		if !bytes.HasPrefix(resp.body, []byte(w.cfg.Hello)) {
			return "", fmt.Errorf("status %d, body %.100q, want %q", resp.status, resp.body, w.cfg.Hello+"...")
		}
	case Slow:
		want := "slow " + strconv.Itoa(w.cfg.SlowMS) + "ms"
		if !bytes.HasPrefix(resp.body, []byte(want)) {
			return "", fmt.Errorf("status %d, body %.100q, want %q", resp.status, resp.body, want+"...")
		}
	case Post:
		if !bytes.Equal(resp.body, post) {
			return "", fmt.Errorf("echo of %d bytes came back as %d bytes, %s", len(post), len(resp.body), firstDiff(post, resp.body))
		}
		return "", nil // a random body may hold "pid=" by chance
	case Stream:
		return checkStream(resp.body, w.cfg.StreamLines)
	}
	return pidIn(resp.body), nil
}

// dial opens a connection to Addr by deadline: TCP, and TLS over it with
// Config.TLS.
func (w *worker) dial(deadline time.Time) (net.Conn, error) {
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("tcp", w.cfg.Addr)
	if err != nil || w.cfg.TLS == nil {
		return conn, err
	}
	tc := tls.Client(conn, w.cfg.TLS)
	tc.SetDeadline(deadline)
	if err := tc.Handshake(); err != nil {
		conn.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("TLS handshake: not done within the %v timeout: %w", w.cfg.Timeout, err)
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	w.tally.handshook(tc.ConnectionState().DidResume)
	return tc, nil
}

// checkStream checks a Stream's body line by line: "stream line=I/N pid=P"
// for I from 1 to N, each ended by a newline, P the same throughout. It
// returns P.
func checkStream(body []byte, n int) (pid string, err error) {
	pid = pidIn(body)
	if pid == "" {
		return "", fmt.Errorf("stream of %d lines: no pid in %.100q", n, body)
	}
	rest := body
	for i := 1; i <= n; i++ {
		want := fmt.Sprintf("stream line=%d/%d pid=%s\n", i, n, pid)
		line, after, found := bytes.Cut(rest, []byte("\n"))
		if !found {
			return "", fmt.Errorf("stream of %d lines: line %d is %.100q, want %q (the body ends there)", n, i, line, want)
		}
		if string(line)+"\n" != want {
			return "", fmt.Errorf("stream of %d lines: line %d is %.100q, want %q", n, i, line, want)
		}
		rest = after
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("stream of %d lines: %d more bytes after the last line: %.100q", n, len(rest), rest)
	}
	return pid, nil
}

// explain names a timeout as such; a bare "i/o timeout" says too little.
func (w *worker) explain(doing string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s: no full response within the %v timeout: %w", doing, w.cfg.Timeout, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func (w *worker) closeConn() {
	if w.conn != nil {
		w.conn.Close()
		w.conn, w.br, w.bw = nil, nil, nil
	}
}

// pidIn returns the digits after the first "pid=" in body, or "".
func pidIn(body []byte) string {
	_, after, ok := bytes.Cut(body, []byte("pid="))
	if !ok {
		return ""
	}
	n := 0
	for n < len(after) && after[n] >= '0' && after[n] <= '9' {
		n++
	}
	return string(after[:n])
}

// firstDiff says where got first differs from want.
func firstDiff(want, got []byte) string {
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	return fmt.Sprintf("equal for the first %d bytes", min(len(want), len(got)))
}
