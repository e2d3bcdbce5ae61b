package accesslog

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func entry() *Entry {
	return &Entry{Time: time.Date(2026, 12, 3, 16, 4, 5, 0, time.UTC), Client: []byte("203.0.113.9"), Method: []byte("GET"),
		Target: []byte(`/a?q="x"`), Proto: "HTTP/1.1", Status: 200, Bytes: 1234, Duration: 1500 * time.Millisecond,
		Upstream: 12 * time.Millisecond, Service: "web", Slot: 1, Port: []byte("8087"), Retried: true,
		UserAgent: []byte("curl/8\x01"), Referer: nil}
}

func TestCombinedLine(t *testing.T) {
	got := string(entry().Append(nil, Combined))
	want := `203.0.113.9 - - [03/Dec/2026:16:04:05 +0000] "GET /a?q=\x22x\x22 HTTP/1.1" 200 1234 "-" "curl/8\x01" rt=1.500 urt=0.012 service=web instance=1:8087 retried=true` + "\n"
	if got != want {
		t.Fatalf("combined:\n%s\nwant\n%s", got, want)
	}
}

func TestJSONLineIsValidJSONWhateverTheClientSent(t *testing.T) {
	e := entry()
	e.Target = []byte("/\xff\"\\\n")
	line := e.Append(nil, JSON)
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if m["status"] != 200.0 || m["service"] != "web" || m["instance"] != "1:8087" || m["retried"] != true || m["duration"] != 1.5 {
		t.Errorf("fields: %v", m)
	}
}

func TestAllocatesNothing(t *testing.T) {
	e, b := entry(), make([]byte, 0, 1024)
	for _, f := range []Format{Combined, JSON} {
		if n := testing.AllocsPerRun(100, func() { b = e.Append(b[:0], f) }); n != 0 {
			t.Errorf("format %d: %v allocations per line", f, n)
		}
	}
}

func TestReopenAfterRotationLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := Open(path, Combined)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		b := Buffer()
		*b = append(*b, s...)
		l.Submit(b)
	}
	write("one\n")
	time.Sleep(2 * flushEvery)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	write("two\n") // still to the renamed file: it is open
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	write("three\n")
	l.Close()
	old, _ := os.ReadFile(path + ".1")
	now, _ := os.ReadFile(path)
	if string(old) != "one\ntwo\n" || string(now) != "three\n" {
		t.Fatalf("rotated %q, new %q; want one two / three", old, now)
	}
}

func TestParseFormat(t *testing.T) {
	for in, ok := range map[string]bool{"": true, "combined": true, "json": true, "common": false} {
		if _, err := ParseFormat(in); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		} else if err != nil && !strings.Contains(err.Error(), in) {
			t.Errorf("%q: the error does not name it: %v", in, err)
		}
	}
}

// TestARequestLineThatDidNotParse: a rejected request's first line is
// logged as it came, escaped, in place of method, path and protocol.
func TestARequestLineThatDidNotParse(t *testing.T) {
	e := entry()
	e.Method, e.Target, e.Proto, e.Service, e.Slot, e.Status = nil, nil, "", "", -1, 400
	e.Line = []byte("\x16\x03\x01 GET \"x\"")
	got := string(e.Append(nil, Combined))
	if want := `"\x16\x03\x01 GET \x22x\x22" 400 1234 `; !strings.Contains(got, want) ||
		!strings.HasSuffix(got, " urt=- service=- instance=- retried=true\n") {
		t.Errorf("combined:\n%s\nwant %s and no service", got, want)
	}
	m := jsonOf(t, e)
	if m["request"] != "\x16\x03\x01 GET \"x\"" || m["method"] != "" || m["path"] != "" || m["status"] != 400.0 {
		t.Errorf("json: %v", m)
	}
	if ut, ok := m["upstream_time"]; !ok || ut != nil {
		t.Errorf("json: upstream_time %v (present %v), want null, as urt=-: no instance was asked", ut, ok)
	}
	if _, ok := jsonOf(t, entry())["request"]; ok {
		t.Error(`a parsed request's JSON line has "request"`)
	}
}

func jsonOf(t *testing.T, e *Entry) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(e.Append(nil, JSON), &m); err != nil {
		t.Fatal(err)
	}
	return m
}
