package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"smoothserve/internal/h2raw"
)

// HTTP/2 clients that keep several requests in flight (a browser loading a
// page, h2load -m) have none refused at a drain or a shutdown: each
// connection is told first with a GOAWAY naming stream 2^31-1, so its
// client stops opening streams while those on their way are served, and
// net/http's GOAWAY, naming the last stream served, comes a second later.
// With net/http's one GOAWAY alone, every request on its way when it went
// out was refused: about m a connection, every time.
func TestBurstingHTTP2ClientsHaveNothingRefused(t *testing.T) {
	for _, how := range []string{"drain", "shutdown"} {
		t.Run(how, func(t *testing.T) {
			in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
			const conns, inFlight = 8, 8
			bursts := make([]h2raw.Burst, conns)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := range bursts {
				c, err := tls.Dial("tcp", f.tlsAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: "a.test"})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				wg.Go(func() { bursts[i] = h2raw.RunBurst(c, "a.test", inFlight, stop) })
			}
			time.Sleep(300 * time.Millisecond)
			done := make(chan error, 1)
			if how == "drain" {
				f.srv.SetDraining(true)
			} else {
				go func() { done <- f.srv.Shutdown(context.Background()) }()
			}
			time.AfterFunc(5*time.Second, func() { close(stop) }) // a client that heeds no GOAWAY: stopped all the same
			wg.Wait()
			for i, b := range bursts {
				if b.Answered == 0 || b.Refused != 0 || b.Lost != 0 || b.NotOK != 0 || b.Err != nil {
					t.Errorf("connection %d: %d answered, %d refused, %d lost, %d not 200 (%v): want some answered and nothing else",
						i, b.Answered, b.Refused, b.Lost, b.NotOK, b.Err)
				}
				if len(b.GoAways) == 0 || b.GoAways[0] != 1<<31-1 {
					t.Errorf("connection %d: GOAWAYs naming %v, want a first naming %d", i, b.GoAways, 1<<31-1)
				}
			}
			if how == "shutdown" {
				if err := <-done; err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			}
		})
	}
}

// A GOAWAY's last stream never goes up (RFC 9113 §6.8; nghttp2 takes a
// rise for a protocol error): a connection net/http already told to go
// (its IdleTimeout) gets no GOAWAY naming 2^31-1 after it. Found by a
// review of the first version, which sent one.
func TestAGoAwaysLastStreamNeverGoesUp(t *testing.T) {
	for _, how := range []string{"drain", "shutdown"} {
		t.Run(how, func(t *testing.T) {
			in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			f := startTLSProxy(t, Options{IdleTimeout: 300 * time.Millisecond}, Route{Port: 2, Set: setOf(t, "s", in)})
			c, err := openH2(f.tlsAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var lasts []uint32
			for len(lasts) == 0 { // net/http's idle GOAWAY
				fr, err := h2raw.Read(c)
				if err != nil {
					t.Fatalf("before the idle GOAWAY: %v", err)
				}
				if fr.Type == h2raw.TypeGoAway {
					lasts = append(lasts, goAwayLast(fr))
				}
			}
			if how == "drain" {
				f.srv.SetDraining(true)
			} else {
				go f.srv.Shutdown(context.Background())
			}
			for {
				fr, err := h2raw.Read(c)
				if err != nil {
					break
				}
				if fr.Type == h2raw.TypeGoAway {
					lasts = append(lasts, goAwayLast(fr))
				}
			}
			for i := 1; i < len(lasts); i++ {
				if lasts[i] > lasts[i-1] {
					t.Errorf("GOAWAYs naming %v: the last stream went up", lasts)
				}
			}
		})
	}
}

// A new connection to a draining host is served: one whose client sends
// its first request once it has read the server's SETTINGS (RFC 9113
// §3.4 allows it) gets no GOAWAY before that request, and one whose
// second request goes 30 ms after its first (within a round trip of the
// GOAWAY its first one brings) has that one answered too. Found by a
// review: the first version told such a connection at once, and net/http
// refused the second request (keep-alives were off on a draining host).
func TestANewConnectionToADrainingHostIsServed(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	f.srv.SetDraining(true)
	dial := func() net.Conn {
		c, err := tls.Dial("tcp", f.tlsAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: "a.test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}

	waits := dial()
	waits.Write(h2raw.Preface())
	for {
		fr, err := h2raw.Read(waits)
		if err != nil {
			t.Fatal(err)
		}
		if fr.Type == h2raw.TypeSettings {
			break
		}
	}
	waits.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		fr, err := h2raw.Read(waits)
		if err != nil {
			break
		}
		if fr.Type == h2raw.TypeGoAway {
			t.Errorf("a GOAWAY naming %d before the connection's first request", goAwayLast(fr))
		}
	}

	second := dial()
	block := h2raw.GetBlock("a.test")
	second.Write(append(h2raw.Preface(), h2raw.Encode(h2raw.TypeHeaders, h2raw.FlagEndStream|h2raw.FlagEndHeaders, 1, block)...))
	time.Sleep(30 * time.Millisecond)
	second.Write(h2raw.Encode(h2raw.TypeHeaders, h2raw.FlagEndStream|h2raw.FlagEndHeaders, 3, block))
	var lasts []uint32
	for {
		fr, err := h2raw.Read(second)
		if err != nil {
			break
		}
		switch {
		case fr.Type == h2raw.TypeGoAway:
			lasts = append(lasts, goAwayLast(fr))
		case fr.Type == h2raw.TypeSettings && fr.Flags&h2raw.FlagAck == 0:
			second.Write(h2raw.Encode(h2raw.TypeSettings, h2raw.FlagAck, 0, nil))
		}
	}
	if len(lasts) != 2 || lasts[0] != 1<<31-1 || lasts[1] != 3 {
		t.Errorf("GOAWAYs naming %v, want %d then 3 (stream 3, sent 30 ms after stream 1, served)", lasts, 1<<31-1)
	}
}

// h2Conn puts its GOAWAY between two of the frames written through it,
// after the first, once, whatever the writes' pieces and the moment it is
// told; an idle connection gets it at once. (From the review.)
func TestH2ConnPutsItsGoAwayBetweenFrames(t *testing.T) {
	cert, _ := selfSigned(t, "a.test")
	for iter := range 200 {
		srv, cl := tlsPipe(t, cert)
		hc := &h2Conn{Conn: srv}
		r := rand.New(rand.NewPCG(uint64(iter), 1))
		var stream []byte
		var sent [][]byte
		for range 1 + r.IntN(12) {
			n := r.IntN(20000)
			if r.IntN(3) == 0 {
				n = 0
			}
			typ := byte(r.IntN(6)) // no GOAWAY among them
			f := h2raw.Encode(typ, 0, 1, bytes.Repeat([]byte{'x'}, n))
			sent = append(sent, f)
			stream = append(stream, f...)
		}
		got := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(cl); got <- b }()
		tellAt, told := r.IntN(len(stream)+1), false
		for p := stream; len(p) > 0; {
			k := min(len(p), 1+r.IntN(5000))
			if !told && len(stream)-len(p) >= tellAt {
				hc.tell()
				told = true
			}
			if _, err := hc.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		if !told {
			hc.tell()
		}
		time.Sleep(5 * time.Millisecond) // tell's goroutine, for an idle connection
		hc.tell()                        // at most once
		srv.Close()
		out := bytes.NewReader(<-got)
		cl.Close()
		gi, j, i := -1, 0, 0
		for ; ; i++ {
			f, err := rawFrame(out)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("iter %d: a frame cut short: %v", iter, err)
			}
			if bytes.Equal(f, goAwayFirst) {
				if gi >= 0 {
					t.Fatalf("iter %d: two GOAWAYs", iter)
				}
				gi = i
				continue
			}
			if j >= len(sent) || !bytes.Equal(f, sent[j]) {
				t.Fatalf("iter %d: frame %d is not what was written", iter, i)
			}
			j++
		}
		if j != len(sent) || gi < 1 {
			t.Fatalf("iter %d: %d of %d frames, the GOAWAY at %d", iter, j, len(sent), gi)
		}
	}
}

// tlsPipe is a TLS connection over net.Pipe, both ends handshaken, closed
// at the test's end.
func tlsPipe(t *testing.T, cert tls.Certificate) (srv, cl *tls.Conn) {
	t.Helper()
	a, b := net.Pipe()
	srv = tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}})
	cl = tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cl.Handshake(); err != nil || <-errc != nil {
		t.Fatal("handshake")
	}
	t.Cleanup(func() { srv.Close(); cl.Close() })
	return srv, cl
}

// rawFrame reads a frame as its bytes were written (no frame here sets
// the stream's reserved bit); io.EOF at a clean end.
func rawFrame(r io.Reader) ([]byte, error) {
	f, err := h2raw.Read(r)
	if err != nil {
		return nil, err
	}
	return h2raw.Encode(f.Type, f.Flags, f.Stream, f.Payload), nil
}
