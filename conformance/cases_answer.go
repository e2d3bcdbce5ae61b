package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"smoothserve/conformance/recording"
)

// answerSpec is an answer case: the instance's raw answer (closing the
// connection after it if close), what it means (status and body; status
// 0: it has no one meaning), and, for an invalid answer, what smoothserve
// must do instead of passing it on (a valid one must be passed on
// canonically).
type answerSpec struct {
	id, name, raw string
	close         bool
	status        int
	body          string
	expect        Expect
	method        string // GET if ""
}

// What smoothserve must do with an invalid answer: a 502 at once, or, once
// the head has been passed on, cut the response short.
var (
	badAnswer = Expect{Class: Rejected, Status: "502", Within: time.Second}
	cutAnswer = Expect{Class: Rejected, Within: time.Second}
)

var (
	headOnly = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	bigHead  = "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 100<<10) + "\r\nContent-Length: 5\r\n\r\nhello"
)

// answers: invalid framing or syntax must become a 502 at once; valid
// framing is re-emitted canonically; 1xx, 204, 304 and answers to HEAD
// carry no body; nothing beyond a response reaches another request.
var answers = []answerSpec{
	{id: "A01", name: "Content-Length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
	{id: "A02", name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", status: 200, body: "hello world"},
	{id: "A03", name: "chunked with extensions and trailers", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;a=b\r\nhello\r\n0;c\r\nX-T: 1\r\n\r\n", status: 200, body: "hello"},
	{id: "A04", name: "body delimited by close", raw: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello close", close: true, status: 200, body: "hello close"},
	{id: "A05", name: "HTTP/1.0 with Content-Length", raw: "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", close: true, status: 200, body: "hello"},
	{id: "A06", name: "HTTP/1.0 delimited by close", raw: "HTTP/1.0 200 OK\r\n\r\nhello", close: true, status: 200, body: "hello"},
	{id: "A07", name: "103 then 200", raw: "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
	{id: "A08", name: "unasked 100 then 200", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
	{id: "A09", name: "204 with a body", raw: "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray!", status: 204},
	{id: "A10", name: "304 with a body", raw: "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray!", status: 304},
	{id: "A11", name: "HEAD answered with a body", method: "HEAD", raw: fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(headOnly), headOnly), status: 200},
	{id: "A12", name: "HEAD answered rightly", method: "HEAD", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", status: 200},
	{id: "A13", name: "an unasked second response", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray!", status: 200, body: "hello"},
	{id: "A14", name: "bytes after the body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloXXXXXXXXXXXX", status: 200, body: "hello"},
	{id: "A15", name: "obs-fold", raw: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A16", name: "Content-Length : 5", raw: "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A17", name: "header of 100 KB", raw: bigHead, status: 200, body: "hello", expect: badAnswer},
	{id: "A18", name: "status 2OO", raw: "HTTP/1.1 2OO OK\r\nContent-Length: 5\r\n\r\nhello", expect: badAnswer},
	{id: "A19", name: "HTTP/2.0 status line", raw: "HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A20", name: "101 to a request without Upgrade", raw: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello", expect: badAnswer},
	{id: "A21", name: "two different Content-Lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", expect: badAnswer},
	{id: "A22", name: "Content-Length: +5", raw: "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A23", name: "Content-Length: -1", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello", expect: badAnswer},
	{id: "A24", name: "Content-Length: 5, 5", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A25", name: "two equal Content-Lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A26", name: "Connection: Content-Length", raw: "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
	{id: "A27", name: "bare LF line ends", raw: "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", status: 200, body: "hello"},
	{id: "A28", name: "bare CR in a value", raw: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A29", name: "NUL in a value", raw: "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A30", name: "Content-Length and chunked", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 200, body: "hello", expect: badAnswer},
	{id: "A31", name: "Transfer-Encoding: gzip", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello", close: true, expect: badAnswer},
	{id: "A32", name: "chunk size zz", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", expect: cutAnswer},
	{id: "A33", name: "chunk size 0x5", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", expect: cutAnswer},
	{id: "A34", name: "no CRLF after chunk data", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", expect: cutAnswer},
	{id: "A35", name: "bare LF after chunk size", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", status: 200, body: "hello", expect: cutAnswer},
	{id: "A36", name: "closed before the head ends", raw: "HTTP/1.1 200 OK\r\nContent-Le", close: true, expect: badAnswer},
	{id: "A37", name: "closed with no answer", raw: "", close: true, expect: badAnswer},
	{id: "A38", name: "body shorter than Content-Length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", close: true, expect: cutAnswer},
	{id: "A39", name: "status of 2 digits", raw: "HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\nhello", expect: badAnswer},
	{id: "A40", name: "status 999", raw: "HTTP/1.1 999 Odd\r\nContent-Length: 5\r\n\r\nhello", status: 999, body: "hello", expect: badAnswer},
	{id: "A41", name: "version in lower case", raw: "http/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A42", name: "space in a field name", raw: "HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A43", name: "DEL in a value", raw: "HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
	{id: "A44", name: "chunked, chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", expect: badAnswer},
	{id: "A45", name: "empty reason phrase", raw: "HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
	{id: "A46", name: "bytes 0x80-0xFF in a value", raw: "HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
	{id: "A47", name: "Content-Length: 005", raw: "HTTP/1.1 200 OK\r\nContent-Length: 005\r\n\r\nhello", status: 200, body: "hello"},
	{id: "A48", name: "404 with a body", raw: "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", status: 404, body: "nope"},
	{id: "A49", name: "304 with Content-Length, no body", raw: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", status: 304},
	{id: "A50", name: "a blank line before the status line", raw: "\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", expect: badAnswer},
}

// answerCases are the answers as cases: a GET (or HEAD) of AnswerPath+id.
func answerCases() []Case {
	cs := make([]Case, len(answers))
	for i, x := range answers {
		method := x.method
		if method == "" {
			method = "GET"
		}
		e := x.expect
		if e.Within == 0 { // a valid answer
			e = canonical(strconv.Itoa(x.status))
		}
		target := recording.AnswerPath + x.id
		cs[i] = Case{
			ID: x.id, Name: x.name,
			Parts:  []string{head(method+" "+target+" HTTP/1.1", "Host: "+host)},
			Want:   []Meaning{{Method: method, Target: target, Host: host}},
			Answer: &Answer{Script: recording.Script{Raw: []byte(x.raw), Close: x.close}, Status: x.status, Body: x.body},
			Expect: e,
		}
	}
	return cs
}
