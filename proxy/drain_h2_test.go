package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"smoothserve/internal/h2raw"
)

// openH2Conns opens n HTTP/2 connections to addr, each with its GET on
// stream 1 answered (openH2), closed at the test's end.
func openH2Conns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := openH2(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// readToClose reads c's frames until it closes and returns the GOAWAYs
// among them; an error if c is still open after 5 s.
func readToClose(c net.Conn) ([]h2raw.Frame, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var goAways []h2raw.Frame
	for {
		f, err := h2raw.Read(c)
		if err != nil {
			if isTimeout(err) {
				return goAways, errors.New("still open after 5 s")
			}
			return goAways, nil
		}
		if f.Type == h2raw.TypeGoAway {
			goAways = append(goAways, f)
		}
	}
}

// goAwayThenClose is readToClose, failing the test if c stays open, or if
// its GOAWAYs are not RFC 9113 §6.8's two: the first naming stream 2^31-1
// (the client opens no new stream, and the ones on their way are served),
// the last, the last stream served. It returns the last (nil if none).
func goAwayThenClose(t *testing.T, c net.Conn, what string) *h2raw.Frame {
	t.Helper()
	gs, err := readToClose(c)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(gs) == 0 {
		return nil
	}
	if last := goAwayLast(gs[0]); len(gs) != 2 || last != 1<<31-1 {
		t.Errorf("%s: %d GOAWAYs, the first naming stream %d: want 2, the first naming %d", what, len(gs), last, 1<<31-1)
	}
	return &gs[len(gs)-1]
}

// goAwayLast is the last stream a GOAWAY names.
func goAwayLast(g h2raw.Frame) uint32 { return binary.BigEndian.Uint32(g.Payload) & 0x7fffffff }

// An idle HTTP/2 connection is told to go (GOAWAY, no error, its last
// stream named) before a drain closes it, as a shutdown tells it: a client
// then knows that what it sends after is not processed, and sends it
// elsewhere. Closed without one, a request on its way is lost.
func TestDrainingSendsIdleHTTP2ConnectionsGoAway(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	idle := openH2Conns(t, f.tlsAddr, 4)
	waitUntil(t, "the connections idle", func() bool { return f.srv.InFlight() == 0 })
	f.srv.SetDraining(true)
	f.srv.SetDraining(true) // idempotent
	for i, c := range idle {
		g := goAwayThenClose(t, c, "idle connection")
		if g == nil {
			t.Fatalf("idle connection %d: closed without a GOAWAY", i)
		}
		if last, code := goAwayLast(*g), binary.BigEndian.Uint32(g.Payload[4:]); last != 1 || code != 0 {
			t.Errorf("idle connection %d: GOAWAY last stream %d code %#x, want 1 and 0 (NO_ERROR)", i, last, code)
		}
	}
	if n := f.srv.DrainClosed(); n != int64(len(idle)) {
		t.Errorf("DrainClosed = %d, want %d", n, len(idle))
	}

	// A new connection while draining: served, one request, then told to go.
	fresh, err := openH2(f.tlsAddr)
	if err != nil {
		t.Fatalf("a new connection while draining: %v", err)
	}
	defer fresh.Close()
	// Its first GOAWAY came with its answer (openH2 read it).
	if gs, err := readToClose(fresh); err != nil || len(gs) != 1 || goAwayLast(gs[0]) != 1 {
		t.Fatalf("new connection after its request: GOAWAYs %v, %v: want one, naming stream 1, then the close", gs, err)
	}

	// Undrained: a connection is kept alive; drained again, told to go.
	f.srv.SetDraining(false)
	again, err := openH2(f.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := h2GetAgain(again); err != nil {
		t.Fatalf("after SetDraining(false), a second request: %v", err)
	}
	waitUntil(t, "the connection idle", func() bool { return f.srv.InFlight() == 0 })
	f.srv.SetDraining(true)
	if goAwayThenClose(t, again, "idle connection, second drain") == nil {
		t.Fatal("second drain: the idle connection closed without a GOAWAY")
	}
}

// Requests sent on idle HTTP/2 connections as a drain begins, before and
// after their GOAWAY (lastCall later), are answered, or refused by
// the GOAWAY (the client knows to send them elsewhere): none meets a
// connection closed without a word. One answered gets its GOAWAY with the
// answer.
func TestRequestsOnIdleHTTP2ConnectionsAtADrain(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	var answered, refused int
	for round := range 3 {
		conns := openH2Conns(t, f.tlsAddr, 16)
		waitUntil(t, "the connections idle", func() bool { return f.srv.InFlight() == 0 })
		start := make(chan struct{})
		errs := make([]error, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() {
				<-start
				time.Sleep(time.Duration(rand.IntN(int((lastCall+lastCall/3)/time.Microsecond))) * time.Microsecond)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				told, err := h2raw.GetTold(c, 3, "a.test")
				if errs[i] = err; err != nil {
					return
				}
				gs, err := readToClose(c)
				if err == nil && told && len(gs) == 0 {
					return // its GOAWAYs came before the answer's end (naming stream 3 or more)
				}
				if err == nil && len(gs) == 0 {
					err = errors.New("closed without a GOAWAY")
				} else if last := goAwayLast(gs[len(gs)-1]); err == nil && last != 3 {
					err = fmt.Errorf("the last GOAWAY names stream %d, want 3 (the one answered)", last)
				}
				if err != nil {
					errs[i] = fmt.Errorf("after its answer: %w", err)
				}
			})
		}
		close(start)
		time.Sleep(500 * time.Microsecond)
		f.srv.SetDraining(true)
		wg.Wait()
		for i, err := range errs {
			switch {
			case err == nil:
				answered++
			case errors.Is(err, h2raw.ErrRefused):
				refused++
			default:
				t.Errorf("round %d, connection %d: %v (want an answer, or a GOAWAY that refuses the stream)", round, i, err)
			}
		}
		f.srv.SetDraining(false)
	}
	t.Logf("%d requests answered, %d refused by GOAWAY (to be sent elsewhere), none lost", answered, refused)
	if answered == 0 || refused == 0 {
		t.Errorf("%d answered and %d refused: the requests did not straddle the GOAWAYs", answered, refused)
	}
}

// told reads what c's server sent within wait: whether a GOAWAY came; an
// error if c closed without one, or broke.
func told(c net.Conn, wait time.Duration) (bool, error) {
	c.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := h2raw.Read(c)
		switch {
		case err != nil && isTimeout(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("closed without a GOAWAY: %w", err)
		case f.Type == h2raw.TypeGoAway:
			return true, nil
		}
	}
}

// Clients that send one request at a time on their HTTP/2 connections, a
// few milliseconds apart, have none refused at a drain or a shutdown:
// each gets its first GOAWAY at once, between two requests or with an
// answer, well before the one that could refuse a request on its way.
func TestSequentialHTTP2ClientsAreToldWithAnAnswer(t *testing.T) {
	for _, how := range []string{"drain", "shutdown"} {
		t.Run(how, func(t *testing.T) {
			in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
			conns := openH2Conns(t, f.tlsAddr, 16)
			var wg sync.WaitGroup
			errs := make([]error, len(conns))
			asked := make([]int, len(conns))
			for i, c := range conns {
				wg.Go(func() {
					for id := uint32(3); ; id += 2 {
						if goAway, err := told(c, time.Duration(5+rand.IntN(10))*time.Millisecond); goAway || err != nil {
							errs[i] = err
							return
						}
						if id > 2*uint32(4*lastCall/time.Millisecond) {
							errs[i] = fmt.Errorf("no GOAWAY after %d requests", id/2)
							return
						}
						c.SetDeadline(time.Now().Add(10 * time.Second))
						goAway, err := h2raw.GetTold(c, id, "a.test")
						if err != nil {
							errs[i] = err
							return
						}
						asked[i]++
						if goAway { // with the answer: it opens no stream more
							return
						}
					}
				})
			}
			time.Sleep(100 * time.Millisecond)
			if how == "drain" {
				f.srv.SetDraining(true)
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				go f.srv.Shutdown(ctx)
			}
			wg.Wait()
			var n int
			for i, err := range errs {
				if err != nil {
					t.Errorf("connection %d, after %d requests answered: %v", i, asked[i], err)
				}
				n += asked[i]
			}
			t.Logf("%d requests on %d connections, each told to go with an answer", n, len(conns))
		})
	}
}

// retired is how many HTTP/2 servers drains retired are still retiring.
func retired(f *tlsFixture) int {
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	n := 0
	for _, h := range f.srv.h2 {
		n += len(h.retired)
	}
	return n
}

// A connection the HTTP/2 server took just before a drain, its serving
// held up in Serve's loop (here: the ConnState hook waits for the
// parker's lock) until after the drain's GOAWAYs would have gone, is
// told to go too: the GOAWAYs wait for Serve to have handed on every
// connection it took. (Else it was registered with net/http's HTTP/2
// server after its Shutdown told the others, got no GOAWAY until its
// IdleTimeout, and held the retired server that long.)
func TestAConnectionTakenLateByARetiredServerIsToldToGo(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{IdleTimeout: 60 * time.Second}, Route{Port: 2, Set: setOf(t, "s", in)})
	openH2Conns(t, f.tlsAddr, 1) // the server has a connection: the drain waits lastCall
	f.srv.parker.mu.Lock()       // holds Serve's loop in the next connection's StateNew hook
	held := true
	defer func() {
		if held {
			f.srv.parker.mu.Unlock()
		}
	}()
	c, err := tls.Dial("tcp", f.tlsAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: "a.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(h2raw.Preface()); err != nil { // and no request, as a browser's preconnect
		t.Fatal(err)
	}
	time.Sleep(2 * h2Settle)
	f.srv.SetDraining(true)
	time.Sleep(lastCall + 2*h2Settle) // past the GOAWAYs of a drain that did not wait
	f.srv.parker.mu.Unlock()
	held = false
	if g := goAwayThenClose(t, c, "the connection taken late"); g == nil {
		t.Fatal("the connection taken late closed without a GOAWAY")
	}
	waitUntil(t, "the retired server gone", func() bool { return retired(f) == 0 })
}

// Drains and undrains with no connection leave no retired server, and no
// goroutine, behind.
func TestDrainsLeaveNoHTTP2ServerBehind(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	openH2Conns(t, f.tlsAddr, 1)[0].Close() // the HTTP/2 server started, and its connection gone
	waitUntil(t, "the connection gone", func() bool { return f.srv.h2For(2).cur.Load().states.empty() })
	before := runtime.NumGoroutine()
	for range 300 {
		f.srv.SetDraining(true)
		f.srv.SetDraining(false)
	}
	waitUntil(t, "the retired servers gone", func() bool { return retired(f) == 0 })
	waitUntil(t, "their goroutines gone", func() bool { return runtime.NumGoroutine() <= before+2 })
}
