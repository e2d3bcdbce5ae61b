package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"smoothserve/internal/h2raw"
)

// readToClose reads c's frames until it closes and returns the first
// GOAWAY among them (nil if none); an error if c is still open after 5 s.
func readToClose(c net.Conn) (*h2raw.Frame, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var goAway *h2raw.Frame
	for {
		f, err := h2raw.Read(c)
		if err != nil {
			if isTimeout(err) {
				return goAway, errors.New("still open after 5 s")
			}
			return goAway, nil
		}
		if f.Type == h2raw.TypeGoAway && goAway == nil {
			goAway = &f
		}
	}
}

// goAwayThenClose is readToClose, failing the test if c stays open.
func goAwayThenClose(t *testing.T, c net.Conn, what string) *h2raw.Frame {
	t.Helper()
	g, err := readToClose(c)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return g
}

// An idle HTTP/2 connection is told to go (GOAWAY, no error, its last
// stream named) before a drain closes it, as a shutdown tells it: a client
// then knows that what it sends after is not processed, and sends it
// elsewhere. Closed without one, a request on its way is lost.
func TestDrainingSendsIdleHTTP2ConnectionsGoAway(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	idle := make([]net.Conn, 4)
	for i := range idle {
		c, err := openH2(f.tlsAddr) // its GET on stream 1 answered
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle[i] = c
	}
	waitUntil(t, "the connections idle", func() bool { return f.srv.InFlight() == 0 })
	f.srv.SetDraining(true)
	f.srv.SetDraining(true) // idempotent
	for i, c := range idle {
		g := goAwayThenClose(t, c, "idle connection")
		if g == nil {
			t.Fatalf("idle connection %d: closed without a GOAWAY", i)
		}
		if last, code := binary.BigEndian.Uint32(g.Payload)&0x7fffffff, binary.BigEndian.Uint32(g.Payload[4:]); last != 1 || code != 0 {
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
	goAwayThenClose(t, fresh, "new connection after its request")

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
// after their GOAWAY (h2DrainQuiet later), are answered, or refused by
// the GOAWAY (the client knows to send them elsewhere): none meets a
// connection closed without a word. One answered gets its GOAWAY with the
// answer.
func TestRequestsOnIdleHTTP2ConnectionsAtADrain(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	var answered, refused int
	for round := range 3 {
		conns := make([]net.Conn, 16)
		for i := range conns {
			c, err := openH2(f.tlsAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns[i] = c
		}
		waitUntil(t, "the connections idle", func() bool { return f.srv.InFlight() == 0 })
		start := make(chan struct{})
		errs := make([]error, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() {
				<-start
				time.Sleep(time.Duration(rand.IntN(int((h2DrainQuiet+h2DrainQuiet/3)/time.Microsecond))) * time.Microsecond)
				if errs[i] = h2GetAgain(c); errs[i] != nil { // stream 3
					return
				}
				g, err := readToClose(c)
				if err == nil && g == nil {
					err = errors.New("closed without a GOAWAY")
				} else if err == nil && binary.BigEndian.Uint32(g.Payload)&0x7fffffff != 3 {
					err = fmt.Errorf("GOAWAY names stream %d, want 3 (the one answered)", binary.BigEndian.Uint32(g.Payload)&0x7fffffff)
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
