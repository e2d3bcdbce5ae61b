package conformance

import (
	"fmt"
	"strings"
)

// post is a POST of /x with the given header lines and body.
func post(body string, fields ...string) string {
	return head("POST /x HTTP/1.1", append([]string{"Host: " + host}, fields...)...) + body
}

// posted is the request the client meant: a POST of /x with body.
func posted(body string) Meaning {
	return Meaning{Method: "POST", Target: "/x", Host: host, Body: body}
}

// framingCases: Content-Length and Transfer-Encoding (RFC 9112 §6).
func framingCases() []Case {
	const body = "hello"
	cl := func(v string) string { return "Content-Length: " + v }
	te := func(v string) string { return "Transfer-Encoding: " + v }
	withCL := func(id, name string, values []string, e Expect) Case {
		fields := make([]string, len(values))
		for i, v := range values {
			fields[i] = cl(v)
		}
		return one(id, name, post(body, fields...), posted(body), e)
	}
	withTE := func(id, name string, fields []string, e Expect) Case {
		return one(id, name, post(chunked(body), fields...), posted(body), e)
	}
	bad := reject("400")
	coding := reject("501")
	return []Case{
		withCL("F01", "Content-Length", []string{"5"}, canonical("200")),
		one("F02", "Content-Length: 0", post("", cl("0")), posted(""), canonical("200")),
		one("F03", "GET with a body", head("GET /x HTTP/1.1", "Host: "+host, cl("5"))+body,
			Meaning{Method: "GET", Target: "/x", Host: host, Body: body}, canonical("200")),
		one("F04", "chunked, two chunks", post("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", te("chunked")), posted("hello world"), canonical("200")),
		withTE("F05", "Content-Length and chunked", []string{cl("5"), te("chunked")}, bad),
		withTE("F06", "chunked and Content-Length", []string{te("chunked"), cl("5")}, bad),
		withCL("F07", "two equal Content-Lengths", []string{"5", "5"}, bad),
		withCL("F08", "two different Content-Lengths", []string{"5", "6"}, bad),
		withCL("F09", "Content-Length: 5, 5", []string{"5, 5"}, bad),
		withCL("F10", "Content-Length: 5,6", []string{"5,6"}, bad),
		withCL("F11", "Content-Length: +5", []string{"+5"}, bad),
		one("F12", "Content-Length: -1", post("", cl("-1")), posted(""), bad),
		withCL("F13", "Content-Length: 005", []string{"005"}, canonical("200")),
		withCL("F14", "Content-Length of 20 digits", []string{"99999999999999999999"}, reject("400|413")),
		withCL("F15", "Content-Length: 0x5", []string{"0x5"}, bad),
		withCL("F16", "Content-Length: 5.0", []string{"5.0"}, bad),
		one("F17", "Content-Length empty", post("", "Content-Length:"), posted(""), bad),
		withCL("F18", "Content-Length: 5 abc", []string{"5 abc"}, bad),
		withCL("F19", "Content-Length with trailing space", []string{"5 "}, canonical("200")),
		withCL("F20", "Content-Length after a tab", []string{"\t5"}, canonical("200")),
		one("F21", "Content-Length, HTTP/1.0", head("POST /x HTTP/1.0", "Host: "+host, cl("5"))+body, posted(body), canonical("200")),
		withTE("F22", "Transfer-Encoding: chunked, chunked", []string{te("chunked, chunked")}, reject("400|501")),
		withTE("F23", "Transfer-Encoding: gzip, chunked", []string{te("gzip, chunked")}, coding),
		one("F24", "Transfer-Encoding: identity", post(body, te("identity"), cl("5")), posted(body), reject("400|501")),
		withTE("F25", "Transfer-Encoding with leading spaces", []string{te("   chunked")}, canonical("200")),
		withTE("F26", "Transfer-Encoding: chunked;", []string{te("chunked;")}, reject("400|501")),
		withTE("F27", "Transfer-Encoding: xchunked", []string{te("xchunked")}, coding),
		withTE("F28", "Transfer-Encoding: Chunked", []string{te("Chunked")}, canonical("200")),
		withTE("F29", "Transfer-Encoding with trailing space", []string{te("chunked ")}, canonical("200")),
		one("F30", "Transfer-Encoding on HTTP/1.0", head("POST /x HTTP/1.0", "Host: "+host, te("chunked"))+chunked(body), posted(body), bad),
		withTE("F31", "two Transfer-Encoding: chunked", []string{te("chunked"), te("chunked")}, bad),
		withTE("F32", "Transfer-Encoding gzip, then chunked", []string{te("gzip"), te("chunked")}, reject("400|501")),
		withTE("F33", "Transfer-Encoding: chunked, identity", []string{te("chunked, identity")}, coding),
		withTE("F34", "Transfer-Encoding folded", []string{"Transfer-Encoding:\r\n chunked"}, bad),
		withTE("F35", "Transfer-Encoding: \"chunked\"", []string{te(`"chunked"`)}, coding),
		withTE("F36", "Transfer-Encoding with a vertical tab", []string{te("chunked\x0b")}, bad),
	}
}

// chunkCases: the chunked coding's syntax (RFC 9112 §7.1).
func chunkCases() []Case {
	c := func(id, name, encoded, decoded string, e Expect) Case {
		return one(id, name, post(encoded, "Transfer-Encoding: chunked"), posted(decoded), e)
	}
	bad := reject("400")
	ok := canonical("200")
	many := strings.Repeat("1\r\na\r\n", 50) + "0\r\n\r\n"
	return []Case{
		c("K01", "chunk size zz", "zz\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K02", "chunk size -5", "-5\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K03", "chunk size +5", "+5\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K04", "chunk size 0x5", "0x5\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K05", "space before chunk size", " 5\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K06", "space after chunk size", "5 \r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K07", "chunk size overflows 64 bits", "10000000000000005\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K08", "empty chunk-size line", "\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K09", "chunk extension", "5;foo=bar\r\nhello\r\n0\r\n\r\n", "hello", ok),
		c("K10", "quoted chunk extension", "5;foo=\"a b\"\r\nhello\r\n0\r\n\r\n", "hello", ok),
		c("K11", "whitespace before chunk extension", "5 ;foo\r\nhello\r\n0\r\n\r\n", "hello", ok),
		c("K12", "control byte in chunk extension", "5;fo\x01o\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K13", "bare CR in chunk extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K14", "no CRLF after chunk data", "5\r\nhelloXX\r\n0\r\n\r\n", "hello", bad),
		c("K15", "bare LF after chunk data", "5\r\nhello\n0\r\n\r\n", "hello", bad),
		c("K16", "bare LF after chunk size", "5\nhello\r\n0\r\n\r\n", "hello", bad),
		c("K17", "bare LF after last chunk", "5\r\nhello\r\n0\n\n", "hello", bad),
		c("K18", "trailer field", "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", "hello", ok),
		c("K19", "trailer with space before colon", "5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n", "hello", bad),
		c("K20", "trailer folded", "5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n", "hello", bad),
		c("K21", "upper-case hex size", "A\r\nhellohello\r\n0\r\n\r\n", "hellohello", ok),
		c("K22", "chunk size 005", "005\r\nhello\r\n0\r\n\r\n", "hello", ok),
		c("K23", "50 one-byte chunks", many, strings.Repeat("a", 50), ok),
		c("K24", "extension on the last chunk", "5\r\nhello\r\n0;x=y\r\n\r\n", "hello", ok),
		c("K25", "no chunks, last chunk only", "0\r\n\r\n", "", ok),
	}
}

// smuggled is the request a smuggling case hides in a body.
const smuggled = "GET /smuggled HTTP/1.1\r\nHost: " + host + "\r\n\r\n"

// teVariant is a way to write Transfer-Encoding: chunked, and what it is.
type teVariant struct {
	name, line string
	chunked    bool   // RFC 9112 reads it as chunked: with a length, the coding wins
	expect     string // smoothserve's status with a Content-Length beside it
}

var teVariants = []teVariant{
	{"plain", "Transfer-Encoding: chunked", true, "400"},
	{"upper case", "Transfer-Encoding: CHUNKED", true, "400"},
	{"after a tab", "Transfer-Encoding:\tchunked", true, "400"},
	{"line ended by bare LF before it", "X-A: x\nTransfer-Encoding: chunked", true, "400"},
	{"space before colon", "Transfer-Encoding : chunked", false, "400"},
	{"xchunked", "Transfer-Encoding: xchunked", false, "400|501"},
	{"chunked, identity", "Transfer-Encoding: chunked, identity", false, "400|501"},
	{"quoted", "Transfer-Encoding: \"chunked\"", false, "400|501"},
	{"vertical tab", "Transfer-Encoding: \x0bchunked", false, "400"},
	{"NUL after", "Transfer-Encoding: chunked\x00", false, "400"},
	{"folded", "Transfer-Encoding:\r\n chunked", true, "400"}, // unfolded, it is chunked
	{"after bare CR", "X-A: x\rTransfer-Encoding: chunked", false, "400"},
	{"line folded into the previous", "X-A: x\r\n Transfer-Encoding: chunked", false, "400"},
	{"then another coding", "Transfer-Encoding: chunked\r\nTransfer-Encoding: x", false, "400|501"},
	{"after another coding", "Transfer-Encoding: x\r\nTransfer-Encoding: chunked", false, "400|501"},
	{"underscore", "Transfer_Encoding: chunked", false, ""},
}

// smugglingCases hide a request in a body read one way by Content-Length
// and another by Transfer-Encoding (or a second Content-Length).
func smugglingCases() []Case {
	var cs []Case
	for i, v := range teVariants {
		expect := reject(v.expect)
		if v.expect == "" { // not a Transfer-Encoding at all: only the length counts
			expect = canonical("200")
		}
		// CL.TE: the length covers a last chunk and the smuggled request.
		body := "0\r\n\r\n" + smuggled
		want := []Meaning{posted(body)}
		if v.chunked {
			want = []Meaning{posted(""), get("/smuggled")}
		}
		cs = append(cs, Case{ID: fmt.Sprintf("S%02d", 2*i+1), Name: "CL.TE, TE " + v.name,
			Parts: []string{post(body, fmt.Sprintf("Content-Length: %d", len(body)), v.line)},
			Want:  want, Expect: expect})
		if v.expect == "" {
			continue
		}
		// TE.CL: one chunk holds the smuggled request; the length ends
		// after the chunk-size line.
		size := fmt.Sprintf("%x\r\n", len(smuggled))
		cs = append(cs, one(fmt.Sprintf("S%02d", 2*i+2), "TE.CL, TE "+v.name,
			post(size+smuggled+"\r\n0\r\n\r\n", fmt.Sprintf("Content-Length: %d", len(size)), v.line),
			posted(smuggled), expect))
	}
	lengths := []struct{ name, fields string }{
		{"length, then 0", "Content-Length: %d\r\nContent-Length: 0"},
		{"0, then length", "Content-Length: 0\r\nContent-Length: %d"},
		{"0 and length in one field", "Content-Length: 0, %d"},
		{"0 with space before colon", "Content-Length : 0\r\nContent-Length: %d"},
		{"0 after bare CR", "X-A: x\rContent-Length: 0\r\nContent-Length: %d"},
		{"0 folded", "Content-Length: %d\r\n 0"},
	}
	for i, l := range lengths {
		cs = append(cs, one(fmt.Sprintf("S%02d", 2*len(teVariants)+i+1), "CL.CL, "+l.name,
			post(smuggled, fmt.Sprintf(l.fields, len(smuggled))), posted(smuggled), reject("400")))
	}
	return cs
}
