package proxy

// A strict reader of what the proxy sends its clients, and a client that
// uses it.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wireResponse is one response as the client read it, after a strict check.
type wireResponse struct {
	raw    []byte // head and body as they came
	status int
	header http.Header
	body   []byte // without its chunked framing
	at     time.Time
}

func (r *wireResponse) String() string {
	return fmt.Sprintf("%d %q", r.status, r.body)
}

// readStrict reads one response to a request of method from br, and checks
// it as a strict client would: a status line "HTTP/1.1 NNN reason", every
// line ending in CRLF, no CR, LF, NUL or other control in a field, names
// that are tokens, at most one Content-Length and never one with
// Transfer-Encoding (which can only be "chunked"), nothing of a body where
// none may be, a close-delimited body only with Connection: close. The
// bytes must also read, as the same response, with net/http.ReadResponse.
func readStrict(br *bufio.Reader, method string) (*wireResponse, error) {
	r, err := readStrictHead(br)
	if err != nil {
		return r, err
	}
	cl, te := r.header.Get("Content-Length"), r.header.Values("Transfer-Encoding")
	var body bytes.Buffer
	switch {
	case r.status < 200 || r.status == 204 || r.status == 304 || method == "HEAD":
	case len(te) > 0:
		err = strictChunks(br, &r.raw, &body)
	case cl != "":
		n, _ := strconv.ParseInt(cl, 10, 64)
		_, err = io.CopyN(io.MultiWriter(&body, (*rawBuf)(&r.raw)), br, n)
	default:
		if !headerHasToken(r.header, "Connection", "close") {
			return r, errors.New("a body delimited by the close, without Connection: close")
		}
		_, err = io.Copy(io.MultiWriter(&body, (*rawBuf)(&r.raw)), br)
	}
	r.body = body.Bytes()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return r, fmt.Errorf("%w: %w", errTruncated, err)
	}
	if err != nil {
		return r, fmt.Errorf("body: %w", err)
	}
	return r, agreesWithNetHTTP(r, method)
}

// readStrictHead reads and checks a response head, as readStrict does.
func readStrictHead(br *bufio.Reader) (*wireResponse, error) {
	r := &wireResponse{header: http.Header{}}
	line, err := strictLine(br, &r.raw)
	if err != nil {
		return r, fmt.Errorf("status line: %w", err)
	}
	r.at = time.Now()
	if len(line) < 13 || !strings.HasPrefix(line, "HTTP/1.1 ") || line[12] != ' ' {
		return r, fmt.Errorf("status line %q: want \"HTTP/1.1 NNN reason\"", line)
	}
	if r.status, err = strconv.Atoi(line[9:12]); err != nil || r.status < 100 || line[9] > '5' {
		return r, fmt.Errorf("status line %q: bad code", line)
	}
	if !valueOK(line[13:]) {
		return r, fmt.Errorf("status line %q: control in the reason", line)
	}
	lengths := 0
	for {
		line, err := strictLine(br, &r.raw)
		if err != nil {
			return r, fmt.Errorf("header: %w", err)
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !tokenOK(name) {
			return r, fmt.Errorf("header line %q: want \"token: value\"", line)
		}
		value = strings.Trim(value, " \t")
		if !valueOK(value) {
			return r, fmt.Errorf("header line %q: control character in the value", line)
		}
		if strings.EqualFold(name, "Content-Length") {
			lengths++
		}
		r.header.Add(name, value)
	}
	cl, te := r.header.Get("Content-Length"), r.header.Values("Transfer-Encoding")
	switch {
	case lengths > 1:
		return r, fmt.Errorf("%d Content-Length fields", lengths)
	case lengths == 1 && !digitsOnly(cl):
		return r, fmt.Errorf("Content-Length %q", cl)
	case len(te) > 0 && lengths > 0:
		return r, errors.New("Content-Length with Transfer-Encoding")
	case len(te) > 1 || len(te) == 1 && te[0] != "chunked":
		return r, fmt.Errorf("Transfer-Encoding %q", te)
	case (r.status < 200 || r.status == 204) && (lengths > 0 || len(te) > 0):
		return r, fmt.Errorf("%d with a framing header", r.status)
	}
	return r, nil
}

// errTruncated says that the connection ended in a body: all a proxy can
// do when its instance's body ends early, and so not malformed.
var errTruncated = errors.New("body cut short by the close")

// agreesWithNetHTTP checks that net/http reads r.raw as the same response.
func agreesWithNetHTTP(r *wireResponse, method string) error {
	rd := bufio.NewReader(bytes.NewReader(r.raw))
	resp, err := http.ReadResponse(rd, &http.Request{Method: method})
	if err != nil {
		return fmt.Errorf("net/http: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("net/http body: %w", err)
	}
	if resp.StatusCode != r.status || !bytes.Equal(body, r.body) || rd.Buffered() > 0 {
		return fmt.Errorf("net/http reads %d %q (%d bytes left), the strict reader %d %q",
			resp.StatusCode, body, rd.Buffered(), r.status, r.body)
	}
	return nil
}

type rawBuf []byte

func (b *rawBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// strictLine reads a line that ends in CRLF and holds no other CR, LF or
// NUL, and returns it without the CRLF.
func strictLine(br *bufio.Reader, raw *[]byte) (string, error) {
	line, err := br.ReadSlice('\n')
	*raw = append(*raw, line...)
	if err != nil {
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", fmt.Errorf("line %q does not end in CRLF", line)
	}
	line = line[:len(line)-2]
	if bytes.ContainsAny(line, "\r\x00") {
		return "", fmt.Errorf("line %q holds a CR or NUL", line)
	}
	return string(line), nil
}

// strictChunks reads a chunked body: hex sizes without extensions, CRLF
// everywhere, valid trailer fields.
func strictChunks(br *bufio.Reader, raw *[]byte, body *bytes.Buffer) error {
	for {
		line, err := strictLine(br, raw)
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(line, 16, 64)
		if err != nil || line == "" || strings.ContainsAny(line, "+-xX") {
			return fmt.Errorf("chunk size %q", line)
		}
		if n == 0 {
			for {
				line, err := strictLine(br, raw)
				if err != nil {
					return err
				}
				if line == "" {
					return nil
				}
				name, _, ok := strings.Cut(line, ":")
				if !ok || !tokenOK(name) || !valueOK(line) {
					return fmt.Errorf("trailer line %q", line)
				}
			}
		}
		if _, err := io.CopyN(io.MultiWriter(body, (*rawBuf)(raw)), br, n); err != nil {
			return err
		}
		if line, err := strictLine(br, raw); err != nil || line != "" {
			return fmt.Errorf("after chunk data: %q %v", line, err)
		}
	}
}

func tokenOK(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// valueOK reports whether s holds only what a field value may: visible
// ASCII, space, tab, obs-text (RFC 9110 §5.5).
func valueOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\t' && (c < 0x20 || c == 0x7f) {
			return false
		}
	}
	return true
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func headerHasToken(h http.Header, name, tok string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// rawClient is a client connection that reads responses strictly.
type rawClient struct {
	tb testing.TB
	c  *net.TCPConn
	br *bufio.Reader
}

// dialRaw connects to addr; every read and write must be done within 10 s.
func dialRaw(tb testing.TB, addr string) *rawClient {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{tb: tb, c: c.(*net.TCPConn), br: bufio.NewReader(c)}
}

// send writes raw and reads the final response to it (interim ones are
// skipped), strictly.
func (cl *rawClient) send(raw string) (*wireResponse, error) {
	if _, err := io.WriteString(cl.c, raw); err != nil {
		return nil, err
	}
	method, _, _ := strings.Cut(raw, " ")
	for {
		r, err := readStrict(cl.br, method)
		if err != nil || r.status >= 200 || r.status == 101 {
			return r, err
		}
	}
}

// mustSend is send that fails the test on an error.
func (cl *rawClient) mustSend(raw string) *wireResponse {
	cl.tb.Helper()
	r, err := cl.send(raw)
	if err != nil {
		cl.tb.Fatalf("%q: %v (read %q)", firstLine(raw), err, rawOf(r))
	}
	return r
}

// closed reports whether the proxy closed the connection (EOF or reset)
// within d, with nothing more sent.
func (cl *rawClient) closed(d time.Duration) error {
	cl.c.SetReadDeadline(time.Now().Add(d))
	b, err := cl.br.ReadByte()
	switch {
	case err == nil:
		return fmt.Errorf("read %q after the response, want the connection closed", b)
	case isTimeout(err):
		return fmt.Errorf("still open after %v", d)
	}
	return nil
}

func firstLine(raw string) string {
	line, _, _ := strings.Cut(raw, "\n")
	return strings.TrimSuffix(line, "\r")
}

func rawOf(r *wireResponse) []byte {
	if r == nil {
		return nil
	}
	return r.raw
}
