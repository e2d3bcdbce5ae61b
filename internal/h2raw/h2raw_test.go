package h2raw

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Against Go's own HTTP/2 server: two GETs on one connection, each a 200
// read to its end.
func TestGetFromGosServer(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/" || r.ProtoMajor != 2:
			w.WriteHeader(http.StatusBadRequest)
		case r.Host == "hints.test": // a 103 first, and trailers after the body
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Trailer", "X-Done")
			io.WriteString(w, "ok")
			w.Header().Set("X-Done", "yes")
			return
		case r.Host == "big.test": // a head of CONTINUATION frames
			w.Header().Set("X-Big", strings.Repeat("x", 40000))
		case r.Host == "gone.test":
			w.WriteHeader(http.StatusBadGateway)
		}
		io.WriteString(w, "ok")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(Preface()); err != nil {
		t.Fatal(err)
	}
	for i, host := range []string{"a.test", "a.test", "hints.test", "big.test"} { // streams 1, 3, 5, 7: in order
		if err := Get(c, uint32(2*i+1), host); err != nil {
			t.Fatalf("%s: %v", host, err)
		}
	}
	c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if f, err := Read(c); err == nil {
		t.Errorf("a frame left after the answers: %#x on stream %d", f.Type, f.Stream)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := Get(c, 9, "gone.test"); err == nil || !strings.Contains(err.Error(), "answered 502") {
		t.Errorf("a 502: %v", err)
	}
}

func TestStatusAndNotIndexed(t *testing.T) {
	for _, tc := range []struct {
		block   string
		status  int
		indexed bool
		cut     bool
	}{
		{"\x88", 200, false, false},
		{"\x3f\xe1\x1f\x8d", 404, false, false},           // a size update to 4096, then 404
		{"\x08\x03502", 502, false, false},                // a literal without indexing
		{"\x48\x03502", 502, true, false},                 // with incremental indexing
		{"\x88\x0f\x10\x0atext/plain", 200, false, false}, // content-type (index 31) without indexing
		{"\x88\x00\x01x\x01y", 200, false, false},         // a new name
		{"\x88\x00\x05x", 200, false, true},
		{"\x88\x7f", 200, true, false},
		{"\x08\x82\x6c\x02", 502, false, false},     // Huffman-coded "502", no padding
		{"\x4e\x82\x64\x01", 301, true, false},      // "301", the name :status 500 (14), indexed
		{"\x08\x82\x08\x03", 101, false, false},     // "101", a bit of padding
		{"\x18\x83\x68\x2f\x7f", 418, false, false}, // "418" never indexed, 7 bits of padding
		{"\x08\x82\x08\x02", 0, false, false},       // padding of a 0: not a status
		{"", 0, false, false},
	} {
		if got := Status([]byte(tc.block)); got != tc.status {
			t.Errorf("Status(%x) = %d, want %d", tc.block, got, tc.status)
		}
		err := NotIndexed([]byte(tc.block))
		if got := errors.Is(err, ErrIndexed); got != tc.indexed || (err != nil && !tc.indexed) != tc.cut {
			t.Errorf("NotIndexed(%x) = %v, want indexed %v, cut short %v", tc.block, err, tc.indexed, tc.cut)
		}
	}
}

// A GOAWAY that names the stream, or a later one, is waited past: the
// answer comes. One that names an earlier stream is a refusal.
func TestGetPastAGoAway(t *testing.T) {
	for _, tc := range []struct {
		last    uint32
		refused bool
	}{{3, false}, {5, false}, {1, true}, {0, true}} {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			if _, err := Read(server); err != nil { // the HEADERS of stream 3
				return
			}
			payload := binary.BigEndian.AppendUint32(nil, tc.last)
			payload = binary.BigEndian.AppendUint32(payload, 0) // NO_ERROR
			server.Write(Encode(TypeGoAway, 0, 0, payload))
			if !tc.refused {
				server.Write(Encode(TypeHeaders, FlagEndStream|FlagEndHeaders, 3, []byte{0x88})) // :status 200
			}
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		err := Get(client, 3, "a.test")
		client.Close()
		if refused := errors.Is(err, ErrRefused); refused != tc.refused || !tc.refused && err != nil {
			t.Errorf("GOAWAY naming stream %d, a GET on stream 3: %v; want refused: %v", tc.last, err, tc.refused)
		}
	}
}
