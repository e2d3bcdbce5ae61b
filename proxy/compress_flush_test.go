package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// A compressed response that streams is flushed once a piece, not twice:
// a flush of nothing adds an empty gzip block, five bytes a piece (over
// HTTP/2 the wait for the instance and the read after it each flushed).
// The stream is at most what one flush a piece makes; less if pieces
// came together on a loaded machine.
func TestACompressedStreamIsFlushedOnceAPiece(t *testing.T) {
	t.Parallel()
	const pieces = 10
	piece := func(i int) string { return fmt.Sprintf("piece %d of the stream, text to compress\n", i) }
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for i := range pieces {
			io.WriteString(w, piece(i))
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	var ref bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&ref, 5) // the proxy's writer
	for i := range pieces {
		io.WriteString(zw, piece(i))
		zw.Flush()
	}
	zw.Close()
	set := setOf(t, "a", in)
	set.SetCompress(true)
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: set})
	for _, h2 := range []bool{true, false} {
		req, _ := http.NewRequest("GET", "https://a.test/stream", nil)
		req.Header.Set("Accept-Encoding", "gzip") // set here: the client passes the body on as it came
		resp, err := f.client(h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("over %s: %v, Content-Encoding %q", resp.Proto, err, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil || len(plain) != pieces*len(piece(0)) {
			t.Fatalf("over %s: decoded %d bytes (%v), want %d", resp.Proto, len(plain), err, pieces*len(piece(0)))
		}
		if len(raw) > ref.Len() {
			t.Errorf("over %s: %d bytes compressed, more than the %d of one flush a piece", resp.Proto, len(raw), ref.Len())
		}
	}
}
