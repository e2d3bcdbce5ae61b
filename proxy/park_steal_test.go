package proxy

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestIdleParkerDoesNotTakeALaterStreamParking: a goroutine that parked
// its idle connection and, slow to look at the flags, sees draining, takes
// back its own parking only: not the one the connection is in by then (it
// was woken meanwhile, its next request became a quiet stream, parked).
// leaveToParker's p.take took the stream: its goroutine served it as an
// idle connection, and draining closed it, the stream cut.
func TestIdleParkerDoesNotTakeALaterStreamParking(t *testing.T) {
	in := startStreamInstance(t)
	parkedIdle, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(*conn) {
		once.Do(func() {
			close(parkedIdle)
			<-release // the goroutine that parked it, paused before it looks at the flags
		})
	}
	f := startProxy(t, parkOpts(Options{parkedHook: hook}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	var relOnce sync.Once
	letGo := func() { relOnce.Do(func() { close(release) }) }
	defer letGo()
	cl := dial(t, f.addr)
	if _, body, err := cl.do(get("x", "/a")); err != nil || body != "ok /a" {
		t.Fatalf("first request: %q %v", body, err)
	}
	within5s(t, parkedIdle, "the connection parked as idle")
	seq := func() (uint32, bool) {
		p := f.srv.parker
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.slots {
			if c != nil && c.strm != nil {
				return p.seq, true
			}
		}
		return p.seq, false
	}
	// Woken by its next request, a stream, which parks when quiet.
	io.WriteString(cl.c, get("x", "/events"))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/events: %v %v", resp, err)
	}
	expectEvent(t, cl, resp, "first")
	end := in.end(t)
	waitUntil(t, "the stream parked", func() bool { _, ok := seq(); return ok })

	f.srv.SetDraining(true) // leaves a stream be
	letGo()
	time.Sleep(200 * time.Millisecond)
	if _, ok := seq(); !ok {
		t.Error("the stream is no longer parked: the idle connection's goroutine took it")
	}
	writeEvent(end, true, "second")
	expectEvent(t, cl, resp, "second")
}
