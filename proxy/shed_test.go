package proxy

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Out of descriptors, the parked connections idle the longest are closed,
// at most the batch asked for; the others serve on.
func TestShedClosesTheLongestIdle(t *testing.T) {
	in := startInstance(t, "a", nil)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOf(t, "s", in)})
	var cls []*client
	for range 5 {
		cl := dial(t, f.addr)
		cl.mustDo(get("x", "/"))
		cls = append(cls, cl)
		time.Sleep(5 * time.Millisecond) // each idle from its own moment
	}
	waitParked(t, f.srv, 5)

	if n := f.srv.parker.shed(2); n != 2 {
		t.Fatalf("shed(2) closed %d", n)
	}
	for i, cl := range cls {
		cl.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := cl.br.ReadByte()
		switch closed := errors.Is(err, io.EOF); {
		case i < 2 && !closed:
			t.Errorf("connection %d, among the 2 idle the longest: read %v, want EOF", i, err)
		case i >= 2 && closed:
			t.Errorf("connection %d was closed; only the 2 idle the longest were to be", i)
		}
	}
	for _, cl := range cls[2:] {
		cl.c.SetReadDeadline(time.Time{})
		cl.mustDo(get("x", "/again"))
	}
}

// makeRoom frees a batch: first the pooled connections to the instances
// unused for a second, then the clients' idle the longest. A shortage
// that came before the last room made closes nothing more; one with
// nothing left to close finds no room.
func TestMakeRoomClosesPooledConnectionsFirst(t *testing.T) {
	const n = 40
	var held sync.WaitGroup
	held.Add(n)
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) {
		held.Done()
		held.Wait() // n requests at once: n connections to the instance
	})
	set := setOf(t, "s", in)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: set})
	var cls []*client
	var wg sync.WaitGroup
	for range n {
		cl := dial(t, f.addr)
		cls = append(cls, cl)
		wg.Go(func() { cl.mustDo(get("x", "/")) })
	}
	wg.Wait()
	waitParked(t, f.srv, n)
	time.Sleep(poolIdleShed + 100*time.Millisecond)

	gen := f.srv.shedGen.Load()
	if !f.srv.makeRoom("test", syscall.EMFILE, gen) || f.srv.ShedConnections() != 0 || f.srv.parker.count() != n {
		t.Fatalf("the first makeRoom closed %d clients (%d parked), want none: %d pooled connections are there to close first",
			f.srv.ShedConnections(), f.srv.parker.count(), n)
	}
	if !f.srv.makeRoom("test", syscall.EMFILE, gen) || f.srv.ShedConnections() != 0 {
		t.Fatalf("a shortage before the last room made closed %d clients", f.srv.ShedConnections())
	}
	if !f.srv.makeRoom("test", syscall.EMFILE, f.srv.shedGen.Load()) || f.srv.ShedConnections() != shedBatch-(n-shedBatch) {
		t.Fatalf("the second makeRoom closed %d clients, want %d beside the %d pooled left", f.srv.ShedConnections(), shedBatch-(n-shedBatch), n-shedBatch)
	}
	if left := set.Backends()[0].TakeIdle(); len(left) != 0 {
		t.Errorf("%d pooled connections left", len(left))
	}
	for f.srv.parker.count() > 0 {
		if !f.srv.makeRoom("test", syscall.EMFILE, f.srv.shedGen.Load()) {
			t.Fatalf("makeRoom found no room with %d parked", f.srv.parker.count())
		}
	}
	if f.srv.makeRoom("test", syscall.EMFILE, f.srv.shedGen.Load()) {
		t.Fatalf("makeRoom with nothing left reported room")
	}
	if got := f.srv.ShedConnections(); got != n {
		t.Errorf("%d client connections counted, want %d", got, n)
	}
}
