package loadclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
)

// response is one HTTP/1.x response, read in full.
type response struct {
	status int
	close  bool // the server will close the connection after it
	body   []byte
}

// readResponse reads one response to a GET or POST from br: status line,
// headers, and a body framed by chunked encoding, Content-Length, or the end
// of the connection. 1xx responses before it are skipped. Any framing
// short of a full response is an error, since the request's fate is then
// unknown.
func readResponse(br *bufio.Reader, maxBody int) (*response, error) {
	tp := textproto.NewReader(br)
	for {
		resp, err := readOne(tp, br, maxBody)
		if err != nil {
			return nil, err
		}
		// 101 would switch protocols, which a GET or POST of ours never asks for.
		if resp.status >= 100 && resp.status < 200 && resp.status != 101 {
			continue
		}
		return resp, nil
	}
}

func readOne(tp *textproto.Reader, br *bufio.Reader, maxBody int) (*response, error) {
	line, err := tp.ReadLine()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("connection closed before a response: %w", err)
		}
		return nil, fmt.Errorf("status line: %w", err)
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 || err != nil || status < 100 {
		return nil, fmt.Errorf("malformed status line %.100q", line)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("headers of %d response: %w", status, noEOF(err))
	}

	resp := &response{status: status}
	conn := strings.ToLower(strings.Join(hdr.Values("Connection"), ","))
	if proto == "HTTP/1.0" {
		resp.close = !hasToken(conn, "keep-alive")
	} else {
		resp.close = hasToken(conn, "close")
	}
	if status < 200 || status == 204 || status == 304 {
		return resp, nil
	}

	te := strings.ToLower(strings.Join(hdr.Values("Transfer-Encoding"), ","))
	switch {
	case te != "":
		// Of the transfer codings only chunked frames a body we can read.
		if te != "chunked" {
			return nil, fmt.Errorf("%d response: unsupported Transfer-Encoding %q", status, te)
		}
		resp.body, err = readChunked(tp, br, maxBody)
		if err != nil {
			return nil, fmt.Errorf("chunked body of %d response: %w", status, err)
		}
	case len(hdr.Values("Content-Length")) > 0:
		cls := hdr.Values("Content-Length")
		n, err := strconv.ParseInt(cls[0], 10, 64)
		for _, cl := range cls[1:] {
			if cl != cls[0] {
				err = fmt.Errorf("conflicting values %q", cls)
			}
		}
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%d response: bad Content-Length %q", status, cls)
		}
		if n > int64(maxBody) {
			return nil, fmt.Errorf("%d response: Content-Length %d over the %d limit", status, n, maxBody)
		}
		resp.body = make([]byte, n)
		if got, err := io.ReadFull(br, resp.body); err != nil {
			return nil, fmt.Errorf("body of %d response: got %d of %d bytes: %w", status, got, n, noEOF(err))
		}
	default:
		// Delimited by the end of the connection: a cut-short body cannot be
		// told from a whole one, which is why servers should not do this.
		resp.close = true
		resp.body, err = io.ReadAll(io.LimitReader(br, int64(maxBody)+1))
		if err != nil {
			return nil, fmt.Errorf("body of %d response to EOF: %w", status, err)
		}
		if len(resp.body) > maxBody {
			return nil, fmt.Errorf("%d response: body over the %d limit", status, maxBody)
		}
	}
	return resp, nil
}

// readChunked reads a chunked body and its trailers.
func readChunked(tp *textproto.Reader, br *bufio.Reader, maxBody int) ([]byte, error) {
	var body []byte
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return nil, fmt.Errorf("chunk size line after %d bytes: %w", len(body), noEOF(err))
		}
		sizeHex, _, _ := strings.Cut(line, ";") // chunk extensions mean nothing to us
		size, err := strconv.ParseUint(strings.TrimSpace(sizeHex), 16, 63)
		if err != nil {
			return nil, fmt.Errorf("bad chunk size line %.40q", line)
		}
		if size == 0 {
			if _, err := tp.ReadMIMEHeader(); err != nil { // trailers, up to the blank line
				return nil, fmt.Errorf("trailers: %w", noEOF(err))
			}
			return body, nil
		}
		if size > uint64(maxBody-len(body)) {
			return nil, fmt.Errorf("body over the %d limit", maxBody)
		}
		start := len(body)
		body = append(body, make([]byte, size)...)
		if got, err := io.ReadFull(br, body[start:]); err != nil {
			return nil, fmt.Errorf("chunk of %d bytes: got %d: %w", size, got, noEOF(err))
		}
		crlf, err := tp.ReadLine()
		if err != nil {
			return nil, fmt.Errorf("after a chunk of %d bytes: %w", size, noEOF(err))
		}
		if crlf != "" {
			return nil, fmt.Errorf("%.40q after a chunk of %d bytes, want CRLF", crlf, size)
		}
	}
}

// noEOF turns an EOF inside a response into io.ErrUnexpectedEOF: there, the
// end of the connection always means a response cut short.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// hasToken reports whether the comma-separated, lower-cased list holds tok.
func hasToken(list, tok string) bool {
	for f := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(f) == tok {
			return true
		}
	}
	return false
}
