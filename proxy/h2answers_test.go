package proxy

// An instance's answers judged the same over HTTP/2 as over HTTP/1.1: the
// bridge reads them with the HTTP/1.1 path's parser.

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHTTP2RefusesTheBrokenAnswersHTTP11Refuses(t *testing.T) {
	t.Parallel()
	for _, tt := range brokenAnswers {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			closed := make(chan error, 1)
			in := startScripted(t, breakOn(tt.answer, closed))
			f := startTLSProxy(t, Options{}, Route{Port: 2, Set: in.set("s", 30*time.Second)})
			cl := f.client(true)
			resp, err := cl.Get("https://a.test/bad")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 502 || resp.ProtoMajor != 2 || string(body) != "Bad Gateway\n" {
				t.Errorf("over %s: %d %q, want 502 \"Bad Gateway\\n\" over HTTP/2", resp.Proto, resp.StatusCode, body)
			}
			brokenClosed(t, closed)
		})
	}
}

func TestHTTP2RelaysOddButSoundAnswers(t *testing.T) {
	t.Parallel()
	for _, tt := range soundAnswers {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := startScripted(t, answerSound(tt.answer))
			f := startTLSProxy(t, Options{}, Route{Port: 2, Set: in.set("s", 30*time.Second)})
			cl := f.client(true)
			resp, err := cl.Get("https://a.test/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			name, value, _ := strings.Cut(tt.header, ":")
			value = strings.TrimSpace(value)
			if got := resp.Header.Get(name); value == "" && got != "" || value != "" && got != value {
				t.Errorf("%s: %q, want %q", name, got, value)
			}
			if resp.StatusCode != 200 || string(body) != tt.body {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, tt.body)
			}
		})
	}
}

func TestHTTP2NoAnswerLeaksIntoAnotherRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range leakyAnswers {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wrote := make(chan struct{}, 1)
			in := startScripted(t, answerEvil(tt.parts, 30*time.Millisecond, wrote))
			f := startTLSProxy(t, Options{}, Route{Port: 2, Set: in.set("s", 30*time.Second)})
			cl := f.client(true)
			req, _ := http.NewRequest(tt.method, "https://a.test/evil", nil)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || string(body) != tt.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			within5s(t, wrote, "the instance's last part written") // the late parts are in
			for i := range 4 {
				resp, err := cl.Get("https://a.test/next")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "good" {
					t.Errorf("request %d after it: %d %q, want 200 \"good\"", i, resp.StatusCode, body)
				}
			}
		})
	}
}

// An answer cut short of its length, or of its last chunk, is an error
// for the HTTP/2 client (its stream reset), never a complete response; one
// whose bad chunk came with its head is a 502, before any of it is sent.
func TestHTTP2TruncatedAnswerIsNotComplete(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, answer string
		is502        bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", false},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := startScripted(t, func(sc *scriptConn) {
				if _, err := sc.next(); err == nil {
					io.WriteString(sc, tt.answer)
				}
			})
			f := startTLSProxy(t, Options{}, Route{Port: 2, Set: in.set("s", 30*time.Second)})
			resp, err := f.client(true).Get("https://a.test/")
			if err != nil {
				return // reset before its head was sent
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (!tt.is502 || resp.StatusCode != 502) {
				t.Errorf("got %d %q complete, want the stream reset (or, for a bad chunk, a 502)", resp.StatusCode, body)
			}
		})
	}
}

// A chunked answer's trailer reaches the HTTP/2 client as its trailer,
// but for fields of one connection.
func TestHTTP2RelaysTheTrailerButHopByHopFields(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, Connection\r\n\r\n"+
		"5\r\nhello\r\n0\r\nx-sum: 42\r\nConnection: close\r\nX-Two: a\r\nX-Two: b\r\n\r\n"))
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: in.set("s", 30*time.Second)})
	resp, err := f.client(true).Get("https://a.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "hello" {
		t.Fatalf("body %q, %v", body, err)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("trailer X-Sum %q, want 42 (trailer %v)", got, resp.Trailer)
	}
	if got := resp.Trailer.Values("X-Two"); len(got) != 2 {
		t.Errorf("trailer X-Two %q, want both values", got)
	}
	if _, ok := resp.Trailer["Connection"]; ok {
		t.Errorf("trailer %v has Connection", resp.Trailer)
	}
}

// An answer without a Content-Type gets none over HTTP/2, as over
// HTTP/1.1: net/http's server would guess one from the body.
func TestHTTP2GuessesNoContentType(t *testing.T) {
	t.Parallel()
	in := startScripted(t, answerEach("HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\n<html><script>1</script>hi!\n"))
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: in.set("s", 30*time.Second)})
	for _, h2 := range []bool{true, false} {
		resp, err := f.client(h2).Get("https://a.test/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct, ok := resp.Header["Content-Type"]; ok || len(body) != 28 {
			t.Errorf("over %s: Content-Type %q, %d bytes; want none, and the 28 bytes", resp.Proto, ct, len(body))
		}
	}
}
