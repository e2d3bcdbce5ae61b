package client

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smoothserve/control/api"
	"smoothserve/internal/tcptest"
)

// fakeDaemon listens on a unix socket and answers every connection with
// answer once it has read the request's head; got receives each head.
func fakeDaemon(t *testing.T, answer string) (path string, got <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	heads := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				heads <- tcptest.ReadHead(bufio.NewReader(c))
				c.Write([]byte(answer))
			}()
		}
	}()
	return path, heads
}

func TestTheRequestIsHTTP10WithoutABody(t *testing.T) {
	path, got := fakeDaemon(t, "HTTP/1.0 200 OK\r\n\r\n{}")
	if err := Dial(path).Stop(context.Background(), "web app"); err != nil {
		t.Fatal(err)
	}
	want := "POST /v1/services/web%20app/stop HTTP/1.0\r\nHost: smoothserve\r\nContent-Length: 0\r\n\r\n"
	if head := <-got; head != want {
		t.Errorf("request %q, want %q", head, want)
	}
}

func TestAnswers(t *testing.T) {
	tests := []struct {
		name, answer string
		want         string // the services' names, or the error's text (a substring)
	}{
		{"to the close", "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + `{"services":[{"name":"web"}]}`, "web"},
		{"with a length", "HTTP/1.1 200 OK\r\ncontent-length: 29\r\n\r\n" + `{"services":[{"name":"api"}]}trailing`, "api"},
		{"bare LF lines", "HTTP/1.0 200 OK\nContent-Length: 13\n\n" + `{"services":[]}`, ""},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", `not an HTTP answer: "SSH-2.0-OpenSSH"`},
		{"bad status", "HTTP/1.0 2x0 OK\r\n\r\n{}", `bad status line "HTTP/1.0 2x0 OK"`},
		{"bad length", "HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n{}", `bad Content-Length`},
		{"two lengths", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", `bad Content-Length`},
		{"short body", "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n{}", "the answer ended before its body of 10 bytes did"},
		{"head cut", "HTTP/1.0 200 OK\r\nContent-Type: app", "the answer's head ended early"},
		{"nothing", "", "the daemon closed the connection without an answer"},
		{"bad JSON", "HTTP/1.0 200 OK\r\n\r\n{", "GET /v1/status: bad answer"},
		{"huge head", "HTTP/1.0 200 OK\r\nX: " + strings.Repeat("a", maxHead) + "\r\n\r\n{}", "the answer's head is over 65536 bytes"},
		// A line as long as the reader's buffer comes in two pieces: its
		// end is not a blank line.
		{"a line of 4096 bytes", "HTTP/1.0 200 OK\r\nX: " + strings.Repeat("a", 4096-5) + "\r\n" + `Content-Length: 29` + "\r\n\r\n" + `{"services":[{"name":"web"}]}`, "web"},
		{"interim answers", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n" + `{"services":[{"name":"web"}]}`, "web"},
		{"endless interim answers", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 20), "more than 8 interim answers (103 Early Hints)"},
		{"folded line", "HTTP/1.0 200 OK\r\nX: a\r\n Content-Length: 2\r\n\r\n{}", `a folded header line " Content-Length: 2"`},
		{"space before colon", "HTTP/1.0 200 OK\r\nContent-Length : 2\r\n\r\n{}", `bad header line "Content-Length : 2"`},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", `a Transfer-Encoding ("chunked")`},
		{"signed length", "HTTP/1.0 200 OK\r\nContent-Length: +2\r\n\r\n{}", `bad Content-Length "+2"`},
		{"huge length", "HTTP/1.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n{}", "the answer's body is over 268435456 bytes (Content-Length 99999999999)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := fakeDaemon(t, tt.answer)
			st, err := Dial(path).Status(context.Background())
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
					t.Errorf("error %q, want one naming %s and saying %q", err, path, tt.want)
				}
				return
			}
			var names []string
			for _, s := range st.Services {
				names = append(names, s.Name)
			}
			if got := strings.Join(names, ","); got != tt.want {
				t.Errorf("services %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name, answer string
		code         int
		msg          string
		is           error
	}{
		{"JSON error", "HTTP/1.0 404 Not Found\r\n\r\n" + `{"error": "web: unknown service"}`, 404, "web: unknown service", api.ErrUnknownService},
		{"disabled", "HTTP/1.0 409 Conflict\r\n\r\n" + `{"error": "web: service is disabled"}`, 409, "web: service is disabled", api.ErrDisabled},
		// The mux answers a route the daemon does not know in plain text.
		{"plain text", "HTTP/1.0 404 Not Found\r\n\r\n404 page not found\n", 404, "POST /v1/services/web/stop: 404 Not Found: 404 page not found", api.ErrUnknownService},
		{"no JSON error", "HTTP/1.0 500 Internal Server Error\r\n\r\n{}", 500, "POST /v1/services/web/stop: 500 Internal Server Error: {}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := fakeDaemon(t, tt.answer)
			err := Dial(path).Stop(context.Background(), "web")
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != tt.code || ae.Msg != tt.msg {
				t.Fatalf("error %#v, want an APIError %d %q", err, tt.code, tt.msg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
}

func TestAFailedRestartGivesItsRollouts(t *testing.T) {
	path, _ := fakeDaemon(t, "HTTP/1.0 500 Internal Server Error\r\n\r\n"+`{"error": "web#1: not ready", "rollouts": [{"service": "web"}]}`)
	rollouts, err := Dial(path).Restart(context.Background(), "web")
	if err == nil || err.Error() != "web#1: not ready" || len(rollouts) != 1 || rollouts[0].Service != "web" {
		t.Errorf("Restart = %v, %v; want the daemon's error and its rollout", rollouts, err)
	}
}

// A context that ends closes the connection at once, whatever the daemon
// does, and the call says so.
func TestAnEndedContextEndsTheCall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Read(make([]byte, 4096)) // the request; no answer
		c.Read(make([]byte, 1))    // until the client closes
		close(closed)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Dial(path).Upgrade(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), path) {
		t.Errorf("Upgrade = %v, want the deadline, naming %s", err, path)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the call took %v after its context ended", took)
	}
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Error("the daemon's side never saw the connection close")
	}
}
