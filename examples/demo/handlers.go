package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Caps on what a request may ask for, so that a typo cannot tie the demo up.
const (
	maxSlowMS      = 60000
	maxSizeBytes   = 64 << 20
	maxEchoBytes   = 64 << 20
	maxStreamLines = 100000
	maxStreamMS    = 60000
)

// sizePattern is the block /size repeats: printable, and with a length that
// is not a power of two, so that a misplaced chunk shows up in a compare.
var sizePattern = []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.")

// sizeBody returns the first n bytes /size?bytes=n sends.
func sizeBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = sizePattern[i%len(sizePattern)]
	}
	return b
}

func newHandler(pid, port int, version string, ws *webSockets) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", ws.serveEcho(pid))
	mux.HandleFunc("/ws.html", serveWSPage)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, fmt.Sprintf("hello from demo pid=%d port=%d version=%s\n", pid, port, version))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, "ok\n")
	})
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, strconv.Itoa(pid))
	})
	mux.HandleFunc("/slow", serveSlow(pid))
	mux.HandleFunc("/echo", serveEcho)
	mux.HandleFunc("/size", func(w http.ResponseWriter, r *http.Request) {
		n, ok := intParam(w, r, "bytes", -1, maxSizeBytes)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		writeSize(w, n)
	})
	// /stream and /events are chunked (no Content-Length) and flushed piece
	// by piece, as server-sent events from Express, Flask or Go are: a proxy
	// must pass each piece on as it comes, not when the response ends.
	mux.HandleFunc("/stream", serveStream(pid))
	mux.HandleFunc("/events", serveEvents(pid))
	return mux
}

// serveSlow answers after ?ms= milliseconds.
func serveSlow(pid int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ms, ok := intParam(w, r, "ms", 0, maxSlowMS)
		if !ok {
			return
		}
		// A server shutdown does not cancel r.Context, so a drain lets this
		// finish; only the client going away ends it early.
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		writeText(w, fmt.Sprintf("slow %dms pid=%d\n", ms, pid))
	}
}

// serveEcho answers with the request's body and Content-Type.
func serveEcho(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEchoBytes))
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			http.Error(w, fmt.Sprintf("echo: body over %d bytes", maxEchoBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "echo: reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	} else {
		// Without this, net/http would sniff one and the echo would not
		// be exact in its headers.
		w.Header()["Content-Type"] = nil
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// serveStream streams ?lines= lines of text, one every ?ms=.
func serveStream(pid int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		lines, ok := intParam(w, r, "lines", 10, maxStreamLines)
		if !ok {
			return
		}
		ms, ok := intParam(w, r, "ms", 100, maxStreamMS)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		writePieces(w, r, lines, ms, func(i int) string {
			return fmt.Sprintf("stream line=%d/%d pid=%d\n", i, lines, pid)
		})
	}
}

// serveEvents streams ?n= server-sent events, one every ?ms=.
func serveEvents(pid int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, ok := intParam(w, r, "n", 10, maxStreamLines)
		if !ok {
			return
		}
		ms, ok := intParam(w, r, "ms", 100, maxStreamMS)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		writePieces(w, r, n, ms, func(i int) string {
			return fmt.Sprintf("id: %d\ndata: event %d/%d pid=%d\n\n", i, i, n, pid)
		})
	}
}

// writePieces writes piece(1) at once, then piece(2..n) every ms, each
// flushed on its own, until n or the client goes away.
func writePieces(w http.ResponseWriter, r *http.Request, n, ms int, piece func(i int) string) {
	rc := http.NewResponseController(w)
	tick := time.NewTicker(time.Duration(max(ms, 1)) * time.Millisecond)
	defer tick.Stop()
	for i := 1; i <= n; i++ {
		if i > 1 {
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := io.WriteString(w, piece(i)); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// sizeBlock is a whole number of patterns, so that blocks written one after
// another continue the pattern.
var sizeBlock = sizeBody(len(sizePattern) * 1024)

// writeSize writes n bytes of the size pattern in blocks, so that a 64 MiB
// response does not need 64 MiB of memory.
func writeSize(w io.Writer, n int) {
	for n > 0 {
		b := sizeBlock[:min(n, len(sizeBlock))]
		if _, err := w.Write(b); err != nil {
			return
		}
		n -= len(b)
	}
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(s)))
	io.WriteString(w, s)
}

// intParam reads query parameter name as an int in 0..max. A missing
// parameter is def, or a 400 when def is negative. On a bad value it writes
// the 400 and returns false.
func intParam(w http.ResponseWriter, r *http.Request, name string, def, max int) (int, bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		if def < 0 {
			http.Error(w, fmt.Sprintf("%s: missing ?%s=N", r.URL.Path, name), http.StatusBadRequest)
			return 0, false
		}
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		http.Error(w, fmt.Sprintf("%s: ?%s=%q: want an integer in 0..%d", r.URL.Path, name, s, max), http.StatusBadRequest)
		return 0, false
	}
	return n, true
}
