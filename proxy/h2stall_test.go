package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/h2raw"
)

// A stream whose client opens no window for its answer (the connection
// alive) is reset after IdleTimeout, as an HTTP/1.1 client that reads
// nothing is cut then (nginx: send_timeout): the instance's request
// ends, rather than held for as long as the client stays. A stream quiet
// for longer than that, its instance thinking, is not reset.
func TestHTTP2StreamWhoseClientOpensNoWindowIsReset(t *testing.T) {
	big := strings.Repeat("z", 256<<10)
	in := startInstance(t, "in", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quiet" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: a\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(1500 * time.Millisecond)
			io.WriteString(w, "data: b\n\n")
			return
		}
		io.WriteString(w, big)
	})
	f := startTLSProxy(t, Options{IdleTimeout: time.Second}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOf(t, "s", in)})

	c, err := tls.Dial("tcp", f.tlsAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: "a.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var settings [6]byte // SETTINGS_INITIAL_WINDOW_SIZE 0: no stream may send a byte of DATA
	binary.BigEndian.PutUint16(settings[0:], 0x4)
	msg := append(h2raw.Preface(), h2raw.Encode(h2raw.TypeSettings, 0, 0, settings[:])...)
	if _, err := c.Write(append(msg, h2raw.Encode(h2raw.TypeHeaders, h2raw.FlagEndStream|h2raw.FlagEndHeaders, 1, h2raw.GetBlock("a.test"))...)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		fr, err := h2raw.Read(c)
		if err != nil {
			t.Fatalf("no RST_STREAM for the stalled stream after %v: %v", time.Since(start), err)
		}
		if fr.Type == h2raw.TypeSettings && fr.Flags&h2raw.FlagAck == 0 {
			c.Write(h2raw.Encode(h2raw.TypeSettings, h2raw.FlagAck, 0, nil))
		}
		if fr.Type == h2raw.TypeRSTStream && fr.Stream == 1 {
			break
		}
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Errorf("the stalled stream was reset after %v, want about IdleTimeout (1s)", d)
	}
	waitUntil(t, "no request in flight", func() bool { return f.srv.InFlight() == 0 })

	resp, err := f.client(true).Get("https://a.test/quiet")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "data: a\n\ndata: b\n\n" {
		t.Errorf("a stream quiet past IdleTimeout: %q %v, want both events", body, err)
	}
}
