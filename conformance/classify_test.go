package conformance

import (
	"fmt"
	"strings"
	"testing"

	"smoothserve/conformance/recording"
)

func TestLintRequest(t *testing.T) {
	tests := []struct {
		raw, want string // want: a part of an issue expected, "" for none
	}{
		{"GET /x HTTP/1.1\r\nHost: h.test\r\n\r\n", ""},
		{"GET http://h.test/x HTTP/1.1\r\nHost: h.test\r\n\r\n", ""},
		{"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: 1\r\n\r\n", ""},
		{"GET /x HTTP/1.1\nHost: h.test\r\n\r\n", "bare LF"},
		{"GET /x HTTP/1.1\r\nHost: h.test\r\nX-A: a\rb\r\n\r\n", "bare CR"},
		{"GET /x HTTP/1.1\r\nHost: h.test\r\nX-A: a\r\n b\r\n\r\n", "obs-fold"},
		{"GET /x HTTP/1.1\r\nHost: h.test\r\nX-A: a\x00b\r\n\r\n", "byte 0x00"},
		{"GET /x HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "2 Content-Length"},
		{"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "both"},
		{"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", "chunk-size line"},
		{"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", "not followed by CRLF"},
		{"GET http://a.test/x HTTP/1.1\r\nHost: b.test\r\n\r\n", "differs"},
		{"GET /x HTTP/1.1\r\nHost: h.test\r\nUpgrade: h2c\r\n\r\n", "h2c"},
		{"GET /x HTTP/1.1\r\nHost: h.test\r\nConnection: close, Host\r\n\r\n", "Connection names host"},
		{"GET /x HTTP/1.1\r\n\r\n", "without Host"},
		{"GET /x HTTP/1.1\r\nHost: u@h\r\n\r\n", "Host"},
		{"GET /x#f HTTP/1.1\r\nHost: h\r\n\r\n", "0x23"},
		{"GET /x HTTP/1.2\r\nHost: h\r\n\r\n", "version"},
	}
	for _, tt := range tests {
		issues := lintRequest([]byte(tt.raw))
		switch {
		case tt.want == "" && len(issues) > 0:
			t.Errorf("lintRequest(%q) = %q, want no issue", tt.raw, issues)
		case tt.want != "" && !strings.Contains(strings.Join(issues, "|"), tt.want):
			t.Errorf("lintRequest(%q) = %q, want an issue with %q", tt.raw, issues, tt.want)
		}
	}
}

func TestSplitResponses(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	tests := []struct {
		name     string
		raw      string
		methods  []string
		closed   bool
		statuses string // of the complete responses; "cut" marks one cut short
		stray    string
	}{
		{"two pipelined", ok + ok, []string{"GET", "GET"}, false, "200,200", ""},
		{"interim then final", "HTTP/1.1 100 Continue\r\n\r\n" + ok, []string{"POST"}, false, "100,200", ""},
		{"HEAD takes no body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + ok, []string{"HEAD", "GET"}, false, "200,200", ""},
		{"bytes after a 204", "HTTP/1.1 204 No Content\r\n\r\nhello", []string{"GET"}, false, "204", "hello"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", []string{"GET"}, false, "200", ""},
		{"cut short", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", []string{"GET"}, true, "cut", ""},
		{"open, incomplete", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", []string{"GET"}, false, "", ""},
		{"delimited by the close", "HTTP/1.1 200 OK\r\n\r\nhello", []string{"GET"}, true, "200", ""},
	}
	for _, tt := range tests {
		rs, stray := splitResponses([]byte(tt.raw), tt.methods, tt.closed)
		var got []string
		for _, r := range rs {
			switch {
			case r.cut:
				got = append(got, "cut")
			case r.complete:
				got = append(got, fmt.Sprint(r.status))
			}
		}
		if strings.Join(got, ",") != tt.statuses || string(stray) != tt.stray {
			t.Errorf("%s: got %v and stray %q, want %s and %q", tt.name, got, stray, tt.statuses, tt.stray)
		}
	}
}

func TestStatusMatches(t *testing.T) {
	tests := []struct {
		pattern, got string
		want         bool
	}{
		{"", "closed", true},
		{"400", "400", true},
		{"400|501", "501", true},
		{"4xx", "431", true},
		{"4xx", "502", false},
		{"200,200", "200,200", true},
		{"200,200", "200", false},
	}
	for _, tt := range tests {
		if got := statusMatches(tt.pattern, tt.got); got != tt.want {
			t.Errorf("statusMatches(%q, %q) = %v, want %v", tt.pattern, tt.got, got, tt.want)
		}
	}
}

// echo is the recorder's answer to request seq of target.
func echo(seq int, target string) string {
	body := fmt.Sprintf("recorder seq=%d method=\"GET\" target=%q bytes=1\n", seq, target)
	return fmt.Sprintf("HTTP/1.1 200 OK\r\n%s: %d\r\nContent-Length: %d\r\n\r\n%s", recording.SeqHeader, seq, len(body), body)
}

// seen is what a client saw: got on the case's connection, and the probe
// answered with probeAnswer.
func seen(c *Case, got string, closed bool, probeAnswer string) *exchange {
	ex := &exchange{}
	ex.read([]byte(got), closed, c.methods())
	ex.probe = &exchange{}
	ex.probe.read([]byte(probeAnswer), true, []string{"GET"})
	return ex
}

func TestClassify(t *testing.T) {
	c := one("T1", "test", head("GET /x HTTP/1.1", "Host: h.test"), get("/x"), canonical("200"))
	req := recording.Record{Seq: 1, Conn: 1, Complete: true, Method: "GET", Target: "/x", Raw: []byte("GET /x HTTP/1.1\r\nHost: h.test\r\n\r\n")}
	smuggled := recording.Record{Seq: 2, Conn: 1, Complete: true, Method: "GET", Target: "/smuggled", Raw: []byte(smuggled)}
	probeRec := recording.Record{Seq: 3, Conn: 2, Complete: true, Method: "GET", Target: "/probe/T1", Raw: []byte("GET /probe/T1 HTTP/1.1\r\n\r\n")}
	goodProbe := echo(3, "/probe/T1")
	bad := "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	tests := []struct {
		name  string
		ex    *exchange
		recs  []recording.Record
		class Class
	}{
		{"forwarded and answered", seen(&c, echo(1, "/x"), false, goodProbe), []recording.Record{req, probeRec}, Canonical},
		{"rejected", seen(&c, bad, true, goodProbe), []recording.Record{probeRec}, Rejected},
		{"smuggled", seen(&c, echo(1, "/x"), false, goodProbe), []recording.Record{req, smuggled, probeRec}, Desynced},
		{"probe got a stale answer", seen(&c, echo(1, "/x"), false, echo(2, "/smuggled")), []recording.Record{req, probeRec}, Desynced},
		{"stray bytes", seen(&c, echo(1, "/x")+"HTTP/1.1 200 OK\r\n", false, goodProbe), []recording.Record{req, probeRec}, Desynced},
		{"no answer", seen(&c, "", false, goodProbe), []recording.Record{req, probeRec}, Hung},
		{"forwarded with a bare LF", seen(&c, echo(1, "/x"), false, goodProbe),
			[]recording.Record{{Seq: 1, Conn: 1, Complete: true, Target: "/x", Raw: []byte("GET /x HTTP/1.1\nHost: h.test\r\n\r\n")}, probeRec}, Ambiguous},
		{"forwarded for another host", seen(&c, echo(1, "/x"), false, goodProbe),
			[]recording.Record{{Seq: 1, Conn: 1, Complete: true, Target: "/x", Raw: []byte("GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n")}, probeRec}, Ambiguous},
	}
	for _, tt := range tests {
		if got := classify(&c, tt.ex, tt.recs); got.Class != tt.class {
			t.Errorf("%s: got %s (%q), want %s", tt.name, got.Class, got.Notes, tt.class)
		}
	}
}
