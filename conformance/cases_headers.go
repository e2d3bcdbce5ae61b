package conformance

import (
	"fmt"
	"strings"
	"time"
)

// withField is a GET of /x with one more header line.
func withField(id, name, field string, e Expect) Case {
	return one(id, name, head("GET /x HTTP/1.1", "Host: "+host, field), get("/x"), e)
}

// headerCases: header field syntax (RFC 9112 §5, RFC 9110 §5.5).
func headerCases() []Case {
	bad := reject("400")
	ok := canonical("200")
	cs := []Case{
		withField("X01", "obs-fold", "X-A: a\r\n b", bad),
		withField("X02", "obs-fold with a tab", "X-A: a\r\n\tb", bad),
		one("X03", "first field line folded", "GET /x HTTP/1.1\r\n X-A: a\r\nHost: h.test\r\n\r\n", get("/x"), bad),
		withField("X04", "space before colon", "X-A : b", bad),
		withField("X05", "tab before colon", "X-A\t: b", bad),
		one("X06", "space before colon in Host", head("GET /x HTTP/1.1", "Host : "+host), get("/x"), bad),
		withField("X07", "bare CR in a value", "X-A: a\rb", bad),
		one("X08", "bare CR hides Transfer-Encoding",
			post("5\r\nhello\r\n0\r\n\r\n", "Content-Length: 15", "X-A: x\rTransfer-Encoding: chunked"),
			posted("5\r\nhello\r\n0\r\n\r\n"), bad),
		withField("X09", "CR CR LF after a field", "X-A: a\r", bad),
		one("X10", "CR CR LF after the request line", "GET /x HTTP/1.1\r\r\nHost: h.test\r\n\r\n", get("/x"), bad),
		withField("X11", "NUL in a value", "X-A: a\x00b", bad),
		withField("X12", "DEL in a value", "X-A: a\x7fb", bad),
		withField("X13", "byte 0x01 in a value", "X-A: a\x01b", bad),
		withField("X14", "byte 0x1f in a value", "X-A: a\x1fb", bad),
		withField("X15", "vertical tab in a value", "X-A: a\x0bb", bad),
		withField("X16", "form feed in a value", "X-A: a\x0cb", bad),
		withField("X17", "ESC in a value", "X-A: a\x1bb", bad),
		withField("X18", "tab in a value", "X-A: a\tb", ok),
		withField("X19", "bytes 0x80-0xFF in a value", "X-A: \x80\xa0\xff", ok),
		withField("X20", "UTF-8 in a value", "X-A: caf\xc3\xa9", ok),
		withField("X21", "empty field name", ": x", bad),
		withField("X22", "space in a field name", "X A: b", bad),
		withField("X23", "'(' in a field name", "X(A): b", bad),
		withField("X24", "'@' in a field name", "X@A: b", bad),
		withField("X25", "'/' in a field name", "X/A: b", bad),
		withField("X26", "byte 0xC3 in a field name", "X\xc3A: b", bad),
		withField("X27", "NUL in a field name", "X\x00A: b", bad),
		withField("X28", "'\"' in a field name", "X\"A: b", bad),
		withField("X29", "line without colon", "X-A", bad),
		withField("X30", "all token characters in a name", "X!#$%&'*+-.^_`|~09az: v", ok),
		withField("X31", "empty value", "X-A:", ok),
		withField("X32", "value of spaces and tabs", "X-A: \t  \t", ok),
		withField("X33", "name of 300 bytes", "X-"+strings.Repeat("n", 298)+": v", ok),
		withField("X34", "value of 6 KB", "X-A: "+strings.Repeat("v", 6<<10), ok),
		withField("X35", "value of 40 KB", "X-A: "+strings.Repeat("v", 40<<10), reject("431")),
		one("X36", "50 fields", head("GET /x HTTP/1.1", manyFields(50)...), get("/x"), ok),
		one("X37", "200 fields", head("GET /x HTTP/1.1", manyFields(200)...), get("/x"), reject("431")),
		one("X38", "a field line ended by bare LF", "GET /x HTTP/1.1\r\nX-A: a\nHost: h.test\r\n\r\n", get("/x"), ok),
		withField("X39", "X-Forwarded-For from the client", "X-Forwarded-For: 203.0.113.9", ok),
	}
	return cs
}

// manyFields is Host and n-1 more fields.
func manyFields(n int) []string {
	fs := []string{"Host: " + host}
	for i := 1; i < n; i++ {
		fs = append(fs, fmt.Sprintf("X-F%03d: %d", i, i))
	}
	return fs
}

// connectionCases: Connection, Upgrade, Expect and other hop-by-hop fields.
func connectionCases() []Case {
	ok := canonical("200")
	xff := get("/x")
	xff.Headers = []string{"X-Forwarded-For"}
	h2c := []string{"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"}
	ws := []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}
	expectHead := head("POST /x HTTP/1.1", "Host: "+host, "Content-Length: 5", "Expect: 100-continue")
	return []Case{
		withField("C01", "Connection: close", "Connection: close", ok),
		one("C02", "HTTP/1.0 keep-alive", head("GET /x HTTP/1.0", "Host: "+host, "Connection: keep-alive"), get("/x"), ok),
		withField("C03", "Connection: host", "Connection: host", ok),
		withField("C04", "Connection: close, Host", "Connection: close, Host", ok),
		one("C05", "Connection: content-length", post("hello", "Content-Length: 5", "Connection: content-length"), posted("hello"), ok),
		one("C06", "Connection: transfer-encoding", post(chunked("hello"), "Transfer-Encoding: chunked", "Connection: transfer-encoding"), posted("hello"), ok),
		one("C07", "Connection: x-forwarded-for", head("GET /x HTTP/1.1", "Host: "+host, "X-Forwarded-For: 203.0.113.9", "Connection: x-forwarded-for"), xff, ok),
		one("C08", "Connection names a custom field", head("GET /x HTTP/1.1", "Host: "+host, "Connection: x-a", "X-A: 1"), get("/x"), ok),
		one("C09", "Upgrade: h2c with HTTP2-Settings", head("GET /x HTTP/1.1", append([]string{"Host: " + host}, h2c...)...), get("/x"), ok),
		withField("C10", "Upgrade: h2c, no Connection", "Upgrade: h2c", ok),
		one("C11", "Upgrade: h2c on a POST", post("hello", append([]string{"Content-Length: 5"}, h2c...)...), posted("hello"), ok),
		one("C12", "Upgrade: websocket", head("GET /x HTTP/1.1", append([]string{"Host: " + host}, ws...)...), get("/x"), ok),
		{ID: "C13", Name: "Expect: 100-continue, body 300 ms later", Parts: []string{expectHead, "hello"},
			Gap: 300 * time.Millisecond, Want: []Meaning{posted("hello")}, Expect: ok},
		one("C14", "Expect: 100-continue, body at once", expectHead+"hello", posted("hello"), ok),
		withField("C15", "Expect: 100-continue without a body", "Expect: 100-continue", ok),
		one("C16", "Expect: 100-continue, chunked", post(chunked("hello"), "Transfer-Encoding: chunked", "Expect: 100-continue"), posted("hello"), ok),
		withField("C17", "Proxy-Connection: keep-alive", "Proxy-Connection: keep-alive", ok),
		withField("C18", "Keep-Alive: timeout=5", "Keep-Alive: timeout=5", ok),
		one("C19", "TE: trailers", head("GET /x HTTP/1.1", "Host: "+host, "Connection: TE", "TE: trailers"), get("/x"), ok),
		withField("C20", "Connection with empty members", "Connection: , close ,", ok),
		withField("C21", "Connection: Upgrade without Upgrade", "Connection: Upgrade", ok),
	}
}

// pipelineCases: several requests in one write, partial requests, line ends.
func pipelineCases() []Case {
	ok := canonical("200")
	g := func(target string) string { return head("GET "+target+" HTTP/1.1", "Host: "+host) }
	postHello := post("hello", "Content-Length: 5")
	return []Case{
		{ID: "P01", Name: "two GETs in one write", Parts: []string{g("/a") + g("/b")},
			Want: []Meaning{get("/a"), get("/b")}, Expect: canonical("200,200")},
		{ID: "P02", Name: "GET, POST, GET in one write", Parts: []string{g("/a") + postHello + g("/c")},
			Want: []Meaning{get("/a"), posted("hello"), get("/c")}, Expect: canonical("200,200,200")},
		{ID: "P03", Name: "GET then HEAD", Parts: []string{g("/a") + head("HEAD /b HTTP/1.1", "Host: "+host)},
			Want: []Meaning{get("/a"), {Method: "HEAD", Target: "/b", Host: host}}, Expect: canonical("200,200")},
		{ID: "P04", Name: "one request and the start of the next", Parts: []string{g("/a") + "GET /b HTTP/1.1\r\nHo"},
			Want: []Meaning{get("/a")}, Expect: ok, Prompt: time.Second},
		{ID: "P05", Name: "chunked POST then GET", Parts: []string{post(chunked("hello"), "Transfer-Encoding: chunked") + g("/b")},
			Want: []Meaning{posted("hello"), get("/b")}, Expect: canonical("200,200")},
		{ID: "P06", Name: "a request after Connection: close", Parts: []string{head("GET /a HTTP/1.1", "Host: "+host, "Connection: close") + g("/b")},
			Want: []Meaning{get("/a")}, Expect: ok},
		{ID: "P07", Name: "a good request, then CL+TE", Parts: []string{g("/a") + post(chunked("hello"), "Content-Length: 10", "Transfer-Encoding: chunked")},
			Want: []Meaning{get("/a"), posted("hello")}, Expect: canonical("200,400")},
		{ID: "P08", Name: "two HTTP/1.0 keep-alive requests", Parts: []string{
			head("GET /a HTTP/1.0", "Host: "+host, "Connection: keep-alive") + head("GET /b HTTP/1.0", "Host: "+host, "Connection: keep-alive")},
			Want: []Meaning{get("/a"), get("/b")}, Expect: canonical("200,200")},
		one("P09", "bare LF line ends", "GET /x HTTP/1.1\nHost: h.test\n\n", get("/x"), ok),
		one("P10", "bare LF after the request line only", "GET /x HTTP/1.1\nHost: h.test\r\n\r\n", get("/x"), ok),
		one("P11", "bare LF line ends, with a body", "POST /x HTTP/1.1\nHost: h.test\nContent-Length: 5\n\nhello", posted("hello"), ok),
		one("P12", "a blank line first", "\r\n"+g("/x"), get("/x"), ok),
		one("P13", "two blank lines first", "\r\n\r\n"+g("/x"), get("/x"), ok),
		one("P14", "a bare LF first", "\n"+g("/x"), get("/x"), ok),
		{ID: "P15", Name: "request in 10-byte writes", Parts: splitEvery(postHello, 10), Gap: 5 * time.Millisecond,
			Want: []Meaning{posted("hello")}, Expect: ok},
		{ID: "P16", Name: "body 300 ms after the head", Parts: []string{head("POST /x HTTP/1.1", "Host: "+host, "Content-Length: 5"), "hello"},
			Gap: 300 * time.Millisecond, Want: []Meaning{posted("hello")}, Expect: ok},
	}
}

func splitEvery(s string, n int) []string {
	var parts []string
	for len(s) > n {
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return append(parts, s)
}
