package client

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadAnswer: any bytes from the socket are an answer or an error,
// never a panic; an answer's body is what its Content-Length says, or
// everything after its head.
func FuzzReadAnswer(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.0 200 OK\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n404 page not found\n",
		"HTTP/1.0 200 OK\nContent-Length: 0\n\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.0 2000 OK\r\n\r\n",
		"\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := readAnswer(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		if a.code < 100 || a.code > 999 {
			t.Errorf("code %d from %q", a.code, b)
		}
		if !bytes.Contains(b, a.body) {
			t.Errorf("body %q is not in %q", a.body, b)
		}
	})
}
