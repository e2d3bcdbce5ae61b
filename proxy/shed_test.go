package proxy

import (
	"errors"
	"io"
	"syscall"
	"testing"
	"time"
)

// Out of descriptors, the parked connections idle the longest are closed,
// at most the batch asked for; the others serve on. A call that finds room
// made since its failure closes nothing more, and one with nothing parked
// reports no room.
func TestMakeRoomClosesTheLongestIdle(t *testing.T) {
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

	// A shortage closes the rest (fewer than a batch); one that failed
	// before that finds room made, and closes nothing more; one after,
	// with nothing parked, finds none.
	waitParked(t, f.srv, 3)
	before := time.Now().UnixNano()
	if !f.srv.makeRoom("test", syscall.EMFILE, time.Now().UnixNano()) || f.srv.ShedConnections() != 3 {
		t.Fatalf("makeRoom: %d closed, want the 3 parked", f.srv.ShedConnections())
	}
	if !f.srv.makeRoom("test", syscall.EMFILE, before) || f.srv.ShedConnections() != 3 {
		t.Fatalf("makeRoom for a failure before the last room made: %d closed in all, want 3", f.srv.ShedConnections())
	}
	if f.srv.makeRoom("test", syscall.EMFILE, time.Now().UnixNano()) {
		t.Fatalf("makeRoom with nothing parked reported room")
	}
}
