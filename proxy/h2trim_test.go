package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smoothserve/internal/h2raw"
)

// A burst of new HTTP/2 connections sets off the parker's trim once it is
// over, with no connection parked (net/http's server holds them), and the
// parker's goroutine ends after it. The trim's threshold is set to 64 new
// connections' garbage here (768 in a daemon). A machine slow enough to
// leave a sweep without a new connection makes the burst a trickle, which
// trims nothing: then another burst.
func TestNewHTTP2ConnectionsSetOffATrim(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	p := f.srv.parker
	const conns = 64 + 32
	p.mu.Lock()
	p.trimAt = 64 * h2Garbage
	p.mu.Unlock()
	state := func() (trims int, running bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.trims, p.set != nil || p.trimming
	}
	for burst := 1; ; burst++ {
		openH2Clients(t, f, conns)
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			trims, running := state()
			if trims == 1 && !running {
				t.Logf("a trim after burst %d of %d new connections; the parker ended", burst, conns)
				return
			}
			if trims == 0 && !running && burst < 3 {
				break // a trickle
			}
			if time.Now().After(deadline) || !running {
				t.Fatalf("after burst %d of %d new connections: %d trims, the parker running: %v; want 1 and ended",
					burst, conns, trims, running)
			}
		}
	}
}

// openH2Clients opens n HTTP/2 connections to f, 16 at a time, each with
// a GET answered 200, and closes them.
func openH2Clients(t *testing.T, f *tlsFixture, n int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				c, err := openH2(f.tlsAddr) // idlemem_test.go: a GET over HTTP/2, answered 200
				if err != nil {
					errs <- err
					return
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// The answers' header fields are never added to the HPACK dynamic table
// (no literal with incremental indexing): an idle connection keeps no
// table of the fields it sent. nginx's encoder sets the table's size to 0;
// HAProxy's fills none.
func TestHTTP2AnswersAreNotIndexed(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Long-Field", "a value long enough to be worth indexing, were it indexed")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	c, err := tls.Dial("tcp", f.tlsAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: "a.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := func(id uint32) []byte {
		return h2raw.Encode(h2raw.TypeHeaders, h2raw.FlagEndStream|h2raw.FlagEndHeaders, id, h2raw.GetBlock("a.test"))
	}
	msg := append(append(h2raw.Preface(), get(1)...), get(3)...)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var sizes []int
	for len(sizes) < 2 {
		fr, err := h2raw.Read(c)
		if err != nil {
			t.Fatalf("reading the answers: %v", err)
		}
		if fr.Type == h2raw.TypeGoAway || fr.Type == h2raw.TypeRSTStream {
			t.Fatalf("frame %#x on stream %d: %x", fr.Type, fr.Stream, fr.Payload)
		}
		if fr.Type != h2raw.TypeHeaders {
			continue
		}
		if err := h2raw.NotIndexed(fr.Payload); err != nil {
			t.Fatalf("the answer on stream %d: %v (%x)", fr.Stream, err, fr.Payload)
		}
		sizes = append(sizes, len(fr.Payload))
	}
	t.Logf("header blocks: %d and %d bytes", sizes[0], sizes[1])
}

// ServeTLS called after Close starts no HTTP/2 server that would wait for
// connections for ever.
func TestServeTLSAfterCloseStartsNoHTTP2Server(t *testing.T) {
	for _, how := range []string{"Close", "Shutdown"} {
		t.Run(how, func(t *testing.T) {
			in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {})
			f := startProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
			if how == "Close" {
				f.srv.Close()
			} else {
				f.srv.Shutdown(context.Background())
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cert, _ := selfSigned(t, "a.test")
			if err := f.srv.ServeTLS(ln, 2, &tls.Config{Certificates: []tls.Certificate{cert}}); err == nil {
				t.Errorf("ServeTLS after %s: nil error", how)
			}
			select {
			case <-f.srv.h2For(2).cur.Load().ln.done:
			default:
				t.Errorf("the HTTP/2 server's listener is open after %s", how)
			}
		})
	}
}

// The drain's table of HTTP/2 connections (h2States) holds each while it is
// open, idle once its stream is done, and forgets it when it closes.
func TestHTTP2ConnectionsLeaveTheDrainTableWhenClosed(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	table := func() (n, idle int) {
		f.srv.h2For(2).cur.Load().states.conns.Range(func(_, fl any) bool {
			n++
			if fl.(*h2State).is(http.StateIdle) {
				idle++
			}
			return true
		})
		return n, idle
	}
	c, err := openH2(f.tlsAddr) // open, its GET answered
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the open connection in the table, idle", func() bool { n, idle := table(); return n == 1 && idle == 1 })
	openH2Clients(t, f, 20) // each closed after its GET
	c.Close()
	waitUntil(t, "no HTTP/2 connection in the table", func() bool { n, _ := table(); return n == 0 })
}

// BenchmarkH2ConnStateFlip is an HTTP/2 connection going from idle to a
// stream and back, as each request on a quiet one does, on many
// connections at once, with 10,000 more in the drain's table (h2States).
// The connections are made one after another on one goroutine, as
// net/http's accepting goroutine makes them.
func BenchmarkH2ConnStateFlip(b *testing.B) {
	var t h2States
	fill := make([]net.Conn, 10000)
	for i := range fill {
		fill[i], _ = net.Pipe()
		t.connState(fill[i], http.StateNew)
	}
	conns := make(chan net.Conn, 64)
	for range cap(conns) {
		nc, _ := net.Pipe()
		t.connState(nc, http.StateNew)
		conns <- nc
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc := <-conns
		for pb.Next() {
			t.connState(nc, http.StateActive)
			t.connState(nc, http.StateIdle)
		}
	})
}
