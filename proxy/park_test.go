package proxy

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// parkOpts parks a connection after 25–50 ms of idling.
func parkOpts(o Options) Options {
	o.parkAfter = 50 * time.Millisecond
	return o
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func waitParked(t *testing.T, s *Server, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d parked", n), func() bool { return s.parker.count() == n })
}

// expectPipelinedAnswers sends three requests for host in one write, and
// checks the answers of an instance named "a", in order.
func expectPipelinedAnswers(t *testing.T, cl *client, host string) {
	t.Helper()
	io.WriteString(cl.c, get(host, "/p1")+get(host, "/p2")+get(host, "/p3"))
	for i := 1; i <= 3; i++ {
		resp, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("a GET /p%d", i); string(body) != want {
			t.Fatalf("pipelined %d after parking: %q, want %q", i, body, want)
		}
	}
}

// waitReturned waits up to 5 s for the error a call sent to done, and
// fails if it is one.
func waitReturned(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return within 5s", what)
	}
}

func TestIdleConnectionParksAndServesOn(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	cl.mustDo(get("x", "/1"))
	waitParked(t, f.srv, 1)

	// A request in pieces: the first wakes the connection.
	req := get("x", "/pieces")
	for _, part := range []string{req[:5], req[5:12], req[12:]} {
		io.WriteString(cl.c, part)
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "a GET /pieces" || resp.Close {
		t.Fatalf("request in pieces after parking: %q close=%v", body, resp.Close)
	}
	waitParked(t, f.srv, 1)

	expectPipelinedAnswers(t, cl, "x")
	waitParked(t, f.srv, 1)
	if n := f.srv.connCount(); n != 1 {
		t.Fatalf("connections = %d, want 1", n)
	}

	// The client leaves while parked: closed and forgotten.
	cl.c.Close()
	waitUntil(t, "the connection forgotten", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
}

func TestParkedConnectionIdleTimeout(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, parkOpts(Options{IdleTimeout: 400 * time.Millisecond}), Route{Port: 1, Set: setOf(t, "s", in)})
	cl := dial(t, f.addr)
	idled := time.Now() // before the proxy's wait begins, however slow the client
	cl.mustDo(get("x", "/"))
	waitParked(t, f.srv, 1)
	expectClosed(t, cl, "parked connection past IdleTimeout")
	// The sweep runs every parkSweep: up to that late, never early.
	if d := time.Since(idled); d < 400*time.Millisecond || d > 400*time.Millisecond+parkSweep+time.Second {
		t.Errorf("closed after %v idle, want 400ms (+ up to %v)", d, parkSweep)
	}
	waitUntil(t, "the connection forgotten", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
}

func TestShutdownClosesParkedConnectionsAfterGrace(t *testing.T) {
	in := startInstance(t, "a", nil)
	// A grace long enough for a loaded machine's round trip.
	f := startProxy(t, parkOpts(Options{ShutdownGrace: 600 * time.Millisecond}), Route{Port: 1, Set: setOf(t, "s", in)})
	quiet, asking := dial(t, f.addr), dial(t, f.addr)
	quiet.mustDo(get("x", "/"))
	asking.mustDo(get("x", "/"))
	waitParked(t, f.srv, 2)

	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- f.srv.Shutdown(context.Background()) }()
	// Within the grace, a request is answered, with Connection: close.
	waitUntil(t, "Shutdown begun", f.srv.shutting.Load)
	resp, body := asking.mustDo(get("x", "/"))
	if resp.StatusCode != 200 || body != "a GET /" || !resp.Close {
		t.Fatalf("request in the grace: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	expectClosed(t, quiet, "parked connection at shutdown")
	if d := time.Since(t0); d < 550*time.Millisecond {
		t.Errorf("closed %v after Shutdown began, before the grace of 600ms", d)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := f.srv.parker.count(); n != 0 {
		t.Errorf("parked after Shutdown: %d", n)
	}
}

func TestPassConnectionsPassesParkedConnections(t *testing.T) {
	oldIn, newIn := startInstance(t, "old", nil), startInstance(t, "new", nil)
	old := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOf(t, "s", oldIn)})
	next := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", newIn)})
	cls := []*client{dial(t, old.addr), dial(t, old.addr), dial(t, old.addr)}
	for _, cl := range cls {
		cl.mustDo(get("x", "/"))
	}
	waitParked(t, old.srv, len(cls))

	var passed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := old.srv.PassConnections(ctx, passTo(next.srv, &passed)); err != nil {
		t.Fatalf("PassConnections: %v", err)
	}
	if n := passed.Load(); n != int64(len(cls)) {
		t.Fatalf("passed %d, want %d", n, len(cls))
	}
	for i, cl := range cls {
		resp, body := cl.mustDo(get("x", "/"))
		if body != "new GET /" || resp.Close {
			t.Errorf("client %d after passing: %q close=%v, want the new process's answer", i, body, resp.Close)
		}
	}
}

func TestDrainingClosesParkedConnections(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOf(t, "s", in)})
	cl, fresh := dial(t, f.addr), dial(t, f.addr)
	cl.mustDo(get("x", "/"))
	waitParked(t, f.srv, 2) // fresh, before its first request, too
	f.srv.SetDraining(true)
	expectClosed(t, cl, "parked connection at SetDraining(true)")
	if n := f.srv.DrainClosed(); n != 1 {
		t.Errorf("DrainClosed = %d, want 1", n)
	}
	// One that has not had its request yet gets it.
	if resp, _ := fresh.mustDo(get("x", "/")); !resp.Close {
		t.Error("first request while draining: no Connection: close")
	}
}

// TestParkingStress: many connections parking and waking at once, their
// clients sending requests (whole, in pieces, pipelined) or leaving at
// random moments.
func TestParkingStress(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, Options{parkAfter: 10 * time.Millisecond}, Route{Port: 1, Set: setOf(t, "s", in)})
	const clients, rounds = 64, 12
	var wg sync.WaitGroup
	var parkedSeen atomic.Bool
	for i := range clients {
		wg.Go(func() {
			cl := dial(t, f.addr)
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for round := range rounds {
				time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
				if f.srv.parker.count() > 0 {
					parkedSeen.Store(true)
				}
				path := fmt.Sprintf("/%d/%d", i, round)
				req, answers := get("x", path), 1
				var err error
				switch r.IntN(3) {
				case 0:
					_, err = io.WriteString(cl.c, req)
				case 1:
					io.WriteString(cl.c, req[:7])
					time.Sleep(time.Duration(r.IntN(15)) * time.Millisecond)
					_, err = io.WriteString(cl.c, req[7:])
				case 2:
					_, err = io.WriteString(cl.c, req+req)
					answers = 2
				}
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				for range answers {
					resp, err := http.ReadResponse(cl.br, nil)
					if err != nil {
						t.Errorf("client %d round %d: %v", i, round, err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					if want := "a GET " + path; string(body) != want {
						t.Errorf("client %d: %q, want %q", i, body, want)
						return
					}
				}
			}
			if i%2 == 0 {
				cl.c.Close() // leaves, parked or not
			}
		})
	}
	wg.Wait()
	if !parkedSeen.Load() {
		t.Error("no connection was ever parked")
	}
}

// The parker trims after a burst of parkings, once it is over or has
// lasted trimEvery, and at most once in trimEvery; a trickle never.
func TestParkerTrimDue(t *testing.T) {
	t0 := time.Now()
	sweep := func(p *parker, parks int, at time.Duration) bool {
		p.garbage += parks * parkGarbage
		if parks > 0 && p.firstGarbage.IsZero() {
			p.firstGarbage = t0.Add(at)
		}
		due := p.trimDueLocked(t0.Add(at))
		if due {
			p.trimming, p.trimmedAt, p.firstGarbage = false, t0.Add(at), time.Time{}
		}
		return due
	}
	type step struct {
		parks int
		at    time.Duration
		due   bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"burst, then over", []step{{200, 0, false}, {200, time.Second / 2, false}, {0, time.Second, true}, {0, 2 * time.Second, false}}},
		{"trickle", []step{{100, 0, false}, {0, time.Second / 2, false}, {100, time.Second, false}, {100, 3 * time.Second / 2, false}, {0, 2 * time.Second, false}}},
		{"steady churn", []step{{100, 0, false}, {100, 5 * time.Second, false}, {100, 10 * time.Second, true}, {100, 15 * time.Second, false}, {300, 20 * time.Second, false}, {100, 25 * time.Second, true}}},
		{"a second burst within trimEvery waits", []step{{300, 0, false}, {0, time.Second, true}, {300, 2 * time.Second, false}, {0, 3 * time.Second, false}, {0, 11 * time.Second, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &parker{trimAt: trimGarbage}
			for i, s := range tc.steps {
				if got := sweep(p, s.parks, s.at); got != s.due {
					t.Fatalf("step %d (%d parkings at %v): due = %v, want %v", i, s.parks, s.at, got, s.due)
				}
			}
		})
	}
}
