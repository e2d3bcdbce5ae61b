package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Limits of an answer: far above any the daemon writes (a status of
// hundreds of instances is some hundred KiB).
const (
	maxHead = 64 << 10
	maxBody = 256 << 20
)

// answer is the daemon's answer to one request.
type answer struct {
	code   int
	status string // "404 Not Found": the code and its text, for messages
	body   []byte
}

// exchange sends method target over a connection of its own and reads the
// answer. A context that ends closes the connection; the error is then
// the context's.
func (c *Client) exchange(ctx context.Context, method, target string) (answer, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		if ctx.Err() != nil {
			return answer{}, fmt.Errorf("smoothserve at %s: %w", c.path, ctx.Err())
		}
		return answer{}, c.connError(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	a, err := roundTrip(conn, method, target)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return answer{}, fmt.Errorf("smoothserve at %s: %s %s: %w", c.path, method, target, err)
	}
	return a, nil
}

// roundTrip writes the request (HTTP/1.0, no body) to rw and reads the
// answer: its head, then its body up to its Content-Length or the end.
func roundTrip(rw io.ReadWriter, method, target string) (answer, error) {
	req := method + " " + target + " HTTP/1.0\r\nHost: smoothserve\r\nContent-Length: 0\r\n\r\n"
	if _, err := io.WriteString(rw, req); err != nil {
		return answer{}, fmt.Errorf("sending the request: %w", OpCause(err))
	}
	return readAnswer(bufio.NewReader(rw))
}

// maxInterim bounds the interim (1xx) answers skipped before the final one.
const maxInterim = 8

// readAnswer reads an HTTP/1.x answer whose body ends at its Content-Length
// or, without one, at the end of r. Interim answers (1xx) before it are
// skipped: a server should send none to an HTTP/1.0 request, but net/http
// sends what a handler writes.
func readAnswer(r *bufio.Reader) (answer, error) {
	var a answer
	length := -1
	for i := 0; ; i++ {
		head, err := readHead(r)
		if err != nil {
			return answer{}, err
		}
		if a, length, err = parseHead(head); err != nil {
			return answer{}, err
		}
		if a.code >= 200 {
			break
		}
		if i == maxInterim {
			return answer{}, fmt.Errorf("more than %d interim answers (%s)", maxInterim, a.status)
		}
	}
	if length >= 0 {
		a.body = make([]byte, length)
		if _, err := io.ReadFull(r, a.body); err != nil {
			return answer{}, fmt.Errorf("the answer ended before its body of %d bytes did: %w", length, OpCause(err))
		}
		return a, nil
	}
	body, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return answer{}, fmt.Errorf("reading the answer's body: %w", OpCause(err))
	}
	if len(body) > maxBody {
		return answer{}, fmt.Errorf("the answer's body is over %d bytes", maxBody)
	}
	a.body = body
	return a, nil
}

// readHead reads the head: its lines up to the blank one that ends it,
// which it leaves out. A line longer than r's buffer comes in pieces, and
// only a whole line is looked at.
func readHead(r *bufio.Reader) ([]byte, error) {
	var head []byte
	lineStart := 0
	for {
		piece, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if len(head)+len(piece) == 0 && errors.Is(err, io.EOF) {
				return nil, errors.New("the daemon closed the connection without an answer")
			}
			return nil, fmt.Errorf("the answer's head ended early: %w", OpCause(err))
		}
		head = append(head, piece...)
		if len(head) > maxHead {
			return nil, fmt.Errorf("the answer's head is over %d bytes", maxHead)
		}
		if err != nil {
			continue // the rest of the line comes next
		}
		line := string(head[lineStart:])
		if lineStart > 0 && (line == "\r\n" || line == "\n") {
			return head[:lineStart], nil
		}
		lineStart = len(head)
	}
}

// parseHead reads the status line and the Content-Length of head (-1:
// none). Any other header is not the client's business.
func parseHead(head []byte) (answer, int, error) {
	lines := strings.Split(strings.TrimRight(string(head), "\r\n"), "\n")
	status := strings.TrimSuffix(lines[0], "\r")
	proto, rest, _ := strings.Cut(status, " ")
	if proto != "HTTP/1.0" && proto != "HTTP/1.1" {
		return answer{}, 0, fmt.Errorf("not an HTTP answer: %q", truncate(status))
	}
	codeText, _, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil || len(codeText) != 3 || code < 100 {
		return answer{}, 0, fmt.Errorf("bad status line %q", truncate(status))
	}
	length := -1
	for _, l := range lines[1:] {
		l = strings.TrimSuffix(l, "\r")
		name, value, ok := strings.Cut(l, ":")
		switch {
		case strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t"):
			return answer{}, 0, fmt.Errorf("a folded header line %q", truncate(l))
		case !ok || strings.ContainsAny(name, " \t"):
			return answer{}, 0, fmt.Errorf("bad header line %q", truncate(l))
		case strings.EqualFold(name, "Transfer-Encoding"):
			return answer{}, 0, fmt.Errorf("a Transfer-Encoding (%q) in the answer to an HTTP/1.0 request", truncate(strings.TrimSpace(value)))
		case !strings.EqualFold(name, "Content-Length"):
			continue
		}
		value = strings.TrimSpace(value)
		n, err := strconv.ParseUint(value, 10, 63)
		if err != nil || length >= 0 && int(n) != length {
			return answer{}, 0, fmt.Errorf("bad Content-Length %q", truncate(value))
		}
		if n > maxBody {
			return answer{}, 0, fmt.Errorf("the answer's body is over %d bytes (Content-Length %d)", maxBody, n)
		}
		length = int(n)
	}
	return answer{code: code, status: strings.TrimSpace(rest)}, length, nil
}

// plainText is a plain-text error body as a message: trimmed, valid UTF-8.
func plainText(b []byte) string {
	return strings.TrimSpace(string(bytes.ToValidUTF8(b, nil)))
}

// truncate shortens what is quoted in a message.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
