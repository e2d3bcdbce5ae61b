package conformance

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"

	"smoothserve/conformance/recording"
)

// response is one response as the client received it.
type response struct {
	raw      []byte
	status   int
	header   http.Header
	body     []byte // decoded
	interim  bool   // 1xx but 101: a final response follows
	complete bool   // its end was found (or, closed, it was cut: see cut)
	cut      bool   // the connection closed before its end
	err      string // net/http could not read it
	issues   []string
	seq      int  // recording.SeqHeader: the request of the instance it answers; 0: none
	http09   bool // the instance's echo without a status line
}

// echoSeq finds the recorder's echo in a body.
var echoSeq = regexp.MustCompile(`^recorder seq=([0-9]+) `)

// splitResponses reads, from the bytes of a connection, the responses to
// requests of the given methods, and returns the bytes beyond the answer
// to the last one. closed: the connection has ended.
func splitResponses(b []byte, methods []string, closed bool) ([]response, []byte) {
	var rs []response
	for i := 0; i < len(methods); {
		if len(b) == 0 {
			return rs, nil
		}
		r, n := readResponse(b, methods[i], closed)
		rs = append(rs, r)
		if !r.complete || r.cut || r.err != "" || r.status == 101 {
			return rs, nil // nothing after it can be read as a response
		}
		b = b[n:]
		if !r.interim {
			i++
		}
	}
	return rs, b
}

// headEnd returns the offset past the first empty line of b (CRLF or LF),
// or -1.
func headEnd(b []byte) int {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		line := b[i : i+j]
		i += j + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i
		}
	}
	return -1
}

// readResponse reads the response at the start of b with net/http, and
// checks it strictly. It returns the response and its length in b.
func readResponse(b []byte, method string, closed bool) (response, int) {
	r := response{raw: b}
	he := headEnd(b)
	if he < 0 {
		r.complete, r.cut = closed, closed
		if m := echoSeq.FindSubmatch(b); m != nil && closed {
			// An HTTP/0.9 answer: the instance's body alone, ended by the close.
			r.seq, _ = strconv.Atoi(string(m[1]))
			r.cut, r.http09, r.body = false, true, b
			r.issues = []string{"an answer without a status line (HTTP/0.9)"}
		}
		return r, len(b)
	}
	src := bytes.NewReader(b)
	br := bufio.NewReader(src)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		r.complete, r.err = true, "net/http: "+err.Error()
		r.issues = lintResponse(b[:he], nil, method, 0)
		return r, len(b)
	}
	r.status, r.header = resp.StatusCode, resp.Header
	r.interim = resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != 101
	r.seq, _ = strconv.Atoi(resp.Header.Get(recording.SeqHeader))
	body, err := io.ReadAll(resp.Body)
	r.body = body
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		r.complete, r.cut = closed, closed
		return r, len(b)
	case err != nil:
		r.complete, r.err = true, "net/http: "+err.Error()
	case resp.ContentLength < 0 && len(resp.TransferEncoding) == 0 && bodyAllowed(resp.StatusCode, method):
		r.complete = closed // delimited by the close
	default:
		r.complete = true
	}
	n := len(b) - br.Buffered() - src.Len()
	r.raw = b[:n]
	r.issues = lintResponse(b[:he], b[he:n], method, resp.StatusCode)
	return r, n
}

// bodyAllowed reports whether a response of this status, to this method,
// has a body (RFC 9112 §6.3).
func bodyAllowed(status int, method string) bool {
	return method != "HEAD" && status >= 200 && status != 204 && status != 304
}
