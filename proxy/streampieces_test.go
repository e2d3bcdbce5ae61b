package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// piecesInstance answers GET /N with a body whose every byte says N,
// chunked or up to the close, written in pieces split at every awkward
// place (inside a size line, inside a chunk's data, between data and its
// CRLF, inside the last chunk), a quiet pause after each: a relay waits
// for the instance (awaitBody) at each pause, with its reader of the
// instance given back and another taken after.
func piecesInstance(sc *scriptConn) {
	seen, err := sc.next()
	if err != nil || seen.req == nil {
		return
	}
	n := strings.TrimPrefix(seen.req.URL.Path, "/")
	data := strings.Repeat(n, 40) // one byte per digit's worth: "3333…"
	var pieces []string
	if seen.req.Header.Get("X-Framing") == "close" {
		io.WriteString(sc, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
		for i := 0; i < len(data); i += 7 {
			pieces = append(pieces, data[i:min(i+7, len(data))])
		}
	} else {
		io.WriteString(sc, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		// Chunks of 15 bytes (size "f"), then one of 25 ("19"), the size
		// line split, the data split, its CRLF apart, the last chunk split.
		a, b := data[:15], data[15:]
		pieces = []string{"f\r\n" + a[:5], a[5:], "\r\n", "1", "9\r", "\n" + b[:10], b[10:] + "\r", "\n0\r", "\n\r\n"}
	}
	for _, p := range pieces {
		time.Sleep(15 * time.Millisecond)
		if _, err := io.WriteString(sc, p); err != nil {
			return
		}
	}
	if seen.req.Header.Get("X-Framing") == "close" {
		sc.Close()
	}
}

// Several streams at once, each quiet between its pieces: what each
// client gets is its own body, whole, in order. A relay that read on
// from the instance reader it had before a wait (given back, and maybe
// another stream's now) would mix them up or lose bytes.
func TestQuietStreamsInPiecesGetTheirOwnBytes(t *testing.T) {
	in := startScripted(t, piecesInstance)
	f := startProxy(t, Options{}, Route{Port: 1, Set: in.set("s", 30*time.Second)})
	streamsInPieces(t, func(i int, n, framing string) (string, error) {
		cl := dialRaw(t, f.addr)
		cl.c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(cl.c, "GET /"+n+" HTTP/1.1\r\nHost: x\r\nX-Framing: "+framing+"\r\n\r\n")
		resp, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	})
}

// Over HTTP/2 too, on one connection and on connections of their own,
// each stream waiting for its instance with the instance's reader and its
// copy buffer given back (relayDecoded).
func TestH2QuietStreamsInPiecesGetTheirOwnBytes(t *testing.T) {
	in := startScripted(t, piecesInstance)
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: in.set("s", 30*time.Second)})
	shared := f.client(true)
	streamsInPieces(t, func(i int, n, framing string) (string, error) {
		hc := shared
		if i%4 >= 2 {
			hc = f.client(true) // a connection of its own
		}
		req, _ := http.NewRequest("GET", "https://a.test/"+n, nil)
		req.Header.Set("X-Framing", framing)
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			return "", fmt.Errorf("answered over %s, want HTTP/2", resp.Proto)
		}
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	})
}

// streamsInPieces runs 16 streams of piecesInstance at once, chunked and
// up to the close in turn, each by get (stream i, asking /n with framing),
// and checks that each body is its own.
func streamsInPieces(t *testing.T, get func(i int, n, framing string) (string, error)) {
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		framing := "chunked"
		if i%2 == 1 {
			framing = "close"
		}
		wg.Go(func() {
			n := fmt.Sprint(1 + i%9)
			body, err := get(i, n, framing)
			if want := strings.Repeat(n, 40); err != nil || body != want {
				errs <- fmt.Errorf("stream %d (%s): body %q, %v; want %q", i, framing, body, err, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
