package proxy

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// A connection told to go at its first request on a draining host, then
// undrained before its server's rotation, is closed all the same (its
// second GOAWAY): its client opens no stream on it any more. Found by a
// review: the rotation found the host undrained and did nothing, and the
// connection stayed open until its IdleTimeout.
func TestAConnectionToldAndThenUndrainedIsClosed(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	f.srv.SetDraining(true)
	c, err := openH2(f.tlsAddr) // its first request: told to go with the answer
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.srv.SetDraining(false) // before the rotation, lastCall after c came
	gs, err := readToClose(c)
	if err != nil {
		t.Fatalf("the connection told to go at its first request, after an undrain: %v (GOAWAYs after the first: %d)", err, len(gs))
	}
}

// Drains and undrains with a connection each, the rotation before or
// after them, leave no retired server or goroutine behind, and a
// rotation due after Shutdown starts no server. (From the review.)
func TestRotationsLeaveNothingBehind(t *testing.T) {
	in := startInstance(t, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := startTLSProxy(t, Options{}, Route{Port: 2, Set: setOf(t, "s", in)})
	openH2Conns(t, f.tlsAddr, 1)[0].Close()
	waitUntil(t, "the connection gone", func() bool { return f.srv.h2For(2).cur.Load().states.empty() })
	before := runtime.NumGoroutine()
	for round := range 6 {
		f.srv.SetDraining(true)
		c, err := openH2(f.tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(round) * 200 * time.Millisecond)
		f.srv.SetDraining(false)
		f.srv.SetDraining(true)
		f.srv.SetDraining(false)
		c.Close()
	}
	waitUntil(t, "the retired servers gone", func() bool { return retired(f) == 0 })
	waitUntil(t, "their goroutines gone", func() bool { return runtime.NumGoroutine() <= before+2 })
	f.srv.SetDraining(true)
	c, err := openH2(f.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	cur := f.srv.h2For(2).cur.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.srv.Shutdown(ctx)
	time.Sleep(lastCall + 200*time.Millisecond)
	if f.srv.h2For(2).cur.Load() != cur {
		t.Error("a rotation after Shutdown started a server")
	}
	waitUntil(t, "the retired servers gone", func() bool { return retired(f) == 0 })
}

// The first GOAWAY never follows net/http's own, however tell and
// net/http's write of its GOAWAY interleave. Found by a review: tell's
// pending flag, set just after the write of net/http's GOAWAY had cleared
// it, sent 2^31-1 after 5 (about 1 time in 75 under -race).
func TestTellNeverFollowsNetHTTPsGoAway(t *testing.T) {
	cert, _ := selfSigned(t, "a.test")
	srv, cl := tlsPipe(t, cert)
	netGoAway := []byte{0, 0, 8, frameGoAway, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0}
	marker := []byte{0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8} // a PING between iterations
	bad := make(chan int, 1)
	go func() {
		n := 0
		var seq [][]byte
		for {
			f, err := rawFrame(cl)
			if err != nil {
				bad <- n
				return
			}
			if bytes.Equal(f, marker) {
				if len(seq) == 2 && bytes.Equal(seq[0], netGoAway) && bytes.Equal(seq[1], goAwayFirst) {
					n++
				}
				seq = seq[:0]
				continue
			}
			seq = append(seq, f)
		}
	}()
	var sink atomic.Int64
	const iters = 5000
	for range iters {
		hc := &h2Conn{Conn: srv, written: frames{begun: true}}
		var start, ready atomic.Bool
		done := make(chan struct{})
		spin, wspin := rand.IntN(300), rand.IntN(300)
		go func() {
			ready.Store(true)
			for !start.Load() {
			}
			for range spin {
				sink.Add(1)
			}
			hc.tell()
			close(done)
		}()
		for !ready.Load() {
		}
		start.Store(true)
		for range wspin {
			sink.Add(1)
		}
		hc.Write(netGoAway)
		<-done
		for deadline := time.Now().Add(time.Second); hc.pending.Load() && time.Now().Before(deadline); {
			runtime.Gosched()
		}
		hc.mu.Lock() // tell's write, if any, is done
		srv.Write(marker)
		hc.mu.Unlock()
	}
	srv.Close()
	if n := <-bad; n > 0 {
		t.Errorf("%d of %d times a GOAWAY naming 2^31-1 followed net/http's naming 5", n, iters)
	}
}
