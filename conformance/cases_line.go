package conformance

import "strings"

// requestLineCases: the forms of the request line (RFC 9112 §3).
func requestLineCases() []Case {
	hostLine := "Host: " + host
	line := func(id, name, start string, want Meaning, e Expect) Case {
		return one(id, name, head(start, hostLine), want, e)
	}
	m := func(method, target string) Meaning { return Meaning{Method: method, Target: target, Host: host} }
	bad := reject("400")
	return []Case{
		line("L01", "origin-form", "GET /x HTTP/1.1", get("/x"), canonical("200")),
		line("L02", "absolute-form http", "GET http://h.test/x HTTP/1.1", get("/x"), canonical("200")),
		line("L03", "absolute-form https", "GET https://h.test/x HTTP/1.1", get("/x"), canonical("200")),
		line("L04", "absolute-form with query", "GET http://h.test/x?a=1 HTTP/1.1", get("/x?a=1"), canonical("200")),
		line("L05", "absolute-form, no path", "GET http://h.test HTTP/1.1", get("/"), canonical("200")),
		line("L06", "absolute-form, scheme upper case", "GET HTTP://h.test/x HTTP/1.1", get("/x"), canonical("200")),
		line("L07", "absolute-form with userinfo", "GET http://u@h.test/x HTTP/1.1", get("/x"), bad),
		line("L08", "absolute-form with user:password", "GET http://u:p@h.test/x HTTP/1.1", get("/x"), bad),
		line("L09", "absolute-form, empty authority", "GET http:///x HTTP/1.1", get("/x"), bad),
		line("L10", "http:/x", "GET http:/x HTTP/1.1", get("http:/x"), bad),
		line("L11", "GET *", "GET * HTTP/1.1", get("*"), bad),
		line("L12", "OPTIONS *", "OPTIONS * HTTP/1.1", m("OPTIONS", "*"), canonical("200")),
		line("L13", "relative target t/x", "GET t/x HTTP/1.1", get("t/x"), bad),
		line("L14", "UTF-8 bytes in target", "GET /caf\xc3\xa9 HTTP/1.1", get("/caf\xc3\xa9"), bad),
		line("L15", "NUL in target", "GET /x\x00y HTTP/1.1", get("/x\x00y"), bad),
		line("L16", "control 0x01 in target", "GET /x\x01y HTTP/1.1", get("/x\x01y"), bad),
		line("L17", "DEL in target", "GET /x\x7fy HTTP/1.1", get("/x\x7fy"), bad),
		line("L18", "tab in target", "GET /x\ty HTTP/1.1", get("/x\ty"), bad),
		line("L19", "fragment in target", "GET /x#f HTTP/1.1", get("/x#f"), bad),
		line("L20", "CONNECT", "CONNECT h.test:443 HTTP/1.1", m("CONNECT", "h.test:443"), reject("405")),
		line("L21", "lower-case method get", "get /x HTTP/1.1", m("get", "/x"), canonical("200")),
		line("L22", "method PURGE", "PURGE /x HTTP/1.1", m("PURGE", "/x"), canonical("200")),
		line("L23", "method M-SEARCH", "M-SEARCH /x HTTP/1.1", m("M-SEARCH", "/x"), canonical("200")),
		line("L24", "method with '('", "GE(T /x HTTP/1.1", m("GE(T", "/x"), bad),
		line("L25", "method with byte 0xC3", "G\xc3T /x HTTP/1.1", m("G\xc3T", "/x"), bad),
		line("L26", "two spaces after method", "GET  /x HTTP/1.1", get("/x"), bad),
		line("L27", "two spaces before version", "GET /x  HTTP/1.1", get("/x"), bad),
		line("L28", "space after version", "GET /x HTTP/1.1 ", get("/x"), bad),
		line("L29", "space before method", " GET /x HTTP/1.1", get("/x"), bad),
		line("L30", "tabs between words", "GET\t/x\tHTTP/1.1", get("/x"), bad),
		line("L31", "four words", "GET /x HTTP/1.1 extra", get("/x"), bad),
		line("L32", "method only", "GET", get("/"), bad),
		{ID: "L33", Name: "HTTP/0.9 request line alone", Parts: []string{"GET /x\r\n"},
			Want: []Meaning{{Method: "GET", Target: "/x", AnyHost: true}}, Expect: rejectNow("400")},
		line("L34", "HTTP/0.9 request line, headers", "GET /x", get("/x"), bad),
		line("L35", "HTTP/1.2", "GET /x HTTP/1.2", get("/x"), reject("505")),
		line("L36", "HTTP/2.0", "GET /x HTTP/2.0", get("/x"), reject("505")),
		line("L37", "HTTP/3.0", "GET /x HTTP/3.0", get("/x"), reject("505")),
		line("L38", "HTTP/2 (no minor)", "GET /x HTTP/2", get("/x"), reject("400|505")),
		line("L39", "version in lower case", "GET /x http/1.1", get("/x"), bad),
		line("L40", "HTTP/1.10", "GET /x HTTP/1.10", get("/x"), bad),
		line("L41", "HTTP/01.1", "GET /x HTTP/01.1", get("/x"), bad),
		line("L42", "HTTP/1", "GET /x HTTP/1", get("/x"), bad),
		line("L43", "HTTP/1.0 with Host", "GET /x HTTP/1.0", get("/x"), canonical("200")),
		one("L44", "HTTP/2 connection preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
			Meaning{Method: "PRI", Target: "*", AnyHost: true}, reject("400|505")),
		line("L45", "target of 20 KB", "GET /"+strings.Repeat("a", 20<<10)+" HTTP/1.1",
			get("/"+strings.Repeat("a", 20<<10)), canonical("200")),
		line("L46", "target of 40 KB", "GET /"+strings.Repeat("a", 40<<10)+" HTTP/1.1",
			get("/"+strings.Repeat("a", 40<<10)), reject("414|431")),
		line("L47", "HEAD", "HEAD /x HTTP/1.1", m("HEAD", "/x"), canonical("200")),
		line("L48", "OPTIONS /x", "OPTIONS /x HTTP/1.1", m("OPTIONS", "/x"), canonical("200")),
		line("L49", "DELETE", "DELETE /x HTTP/1.1", m("DELETE", "/x"), canonical("200")),
		line("L50", "percent-encoded bytes", "GET /a%20b%00c HTTP/1.1", get("/a%20b%00c"), canonical("200")),
		line("L51", "dot segments", "GET /a/../b HTTP/1.1", get("/a/../b"), canonical("200")),
		line("L52", "double slash", "GET //x HTTP/1.1", get("//x"), canonical("200")),
		one("L53", "absolute-form with port", head("GET http://h.test:8080/x HTTP/1.1", "Host: h.test:8080"), Meaning{Method: "GET", Target: "/x", Host: "h.test:8080"}, canonical("200")),
		line("L54", "absolute-form, port not a number", "GET http://h.test:ab/x HTTP/1.1", get("/x"), bad),
		line("L55", "query only", "GET /?a=1&b=%41 HTTP/1.1", get("/?a=1&b=%41"), canonical("200")),
	}
}

// hostCases: the Host field and the authority (RFC 9112 §3.2, RFC 3986).
func hostCases() []Case {
	withHost := func(id, name, value, meant string, e Expect) Case {
		return one(id, name, head("GET /x HTTP/1.1", "Host: "+value), Meaning{Method: "GET", Target: "/x", Host: meant}, e)
	}
	bad := reject("400")
	cs := []Case{
		one("H01", "no Host, HTTP/1.1", head("GET /x HTTP/1.1"), Meaning{Method: "GET", Target: "/x", AnyHost: true}, bad),
		one("H02", "no Host, HTTP/1.0", head("GET /x HTTP/1.0"), Meaning{Method: "GET", Target: "/x", AnyHost: true}, canonical("200")),
		one("H03", "two equal Hosts", head("GET /x HTTP/1.1", "Host: h.test", "Host: h.test"), get("/x"), bad),
		one("H04", "two different Hosts", head("GET /x HTTP/1.1", "Host: h.test", "Host: other.test"), get("/x"), bad),
		one("H05", "Host and host", head("GET /x HTTP/1.1", "Host: h.test", "host: other.test"), get("/x"), bad),
		withHost("H06", "empty Host", "", "", bad),
		withHost("H07", "space inside Host", "h .test", "h .test", bad),
		withHost("H08", "spaces around Host", "  h.test  ", host, canonical("200")),
		withHost("H09", "'@' in Host", "u@h.test", "u@h.test", bad),
		withHost("H10", "'/' in Host", "h.test/x", "h.test/x", bad),
		withHost("H11", "control 0x01 in Host", "h\x01.test", "h\x01.test", bad),
		withHost("H12", "NUL in Host", "h\x00.test", "h\x00.test", bad),
		withHost("H13", "Host with port", "h.test:8080", "h.test:8080", canonical("200")),
		withHost("H14", "Host, port not a number", "h.test:ab", "h.test:ab", bad),
		withHost("H15", "Host, empty port", "h.test:", "h.test:", canonical("200")),
		withHost("H16", "IPv6 literal with port", "[::1]:8080", "[::1]:8080", canonical("200")),
		withHost("H17", "IPv6 without brackets", "::1", "::1", bad),
		withHost("H18", "IPv6, no closing bracket", "[::1", "[::1", bad),
		withHost("H19", "trailing dot", "h.test.", "h.test.", canonical("200")),
		withHost("H20", "upper case", "H.TEST", "H.TEST", canonical("200")),
		withHost("H21", "'_' in Host", "h_x.test", "h_x.test", canonical("200")),
		withHost("H22", "byte 0xE9 in Host", "h\xe9.test", "h\xe9.test", bad),
		withHost("H23", "'?' in Host", "h.test?x", "h.test?x", bad),
		withHost("H24", "'#' in Host", "h.test#x", "h.test#x", bad),
		withHost("H25", "backslash in Host", "h.test\\x", "h.test\\x", bad),
		withHost("H26", "two hosts in one value", "a.test, b.test", "a.test, b.test", bad),
		withHost("H27", "tab inside Host", "h\t.test", "h\t.test", bad),
		withHost("H28", "two ports", "h.test:80:80", "h.test:80:80", bad),
		withHost("H29", "'@' after port", "h.test:80@evil.test", "h.test:80@evil.test", bad),
		one("H30", "absolute-form authority differs from Host",
			head("GET http://a.test/x HTTP/1.1", "Host: b.test"), Meaning{Method: "GET", Target: "/x", Host: "a.test"}, canonical("200")),
		one("H31", "https authority differs from Host",
			head("GET https://a.test/x HTTP/1.1", "Host: b.test"), Meaning{Method: "GET", Target: "/x", Host: "a.test"}, canonical("200")),
		one("H32", "absolute-form, no Host, HTTP/1.1",
			head("GET http://h.test/x HTTP/1.1"), get("/x"), bad),
		one("H33", "absolute-form, no Host, HTTP/1.0",
			head("GET http://h.test/x HTTP/1.0"), get("/x"), canonical("200")),
		one("H34", "absolute-form authority differs in case",
			head("GET http://H.TEST/x HTTP/1.1", "Host: h.test"), Meaning{Method: "GET", Target: "/x", Host: "H.TEST"}, canonical("200")),
	}
	return cs
}
