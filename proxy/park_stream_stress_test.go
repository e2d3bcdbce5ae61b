package proxy

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Parked streams stressed (written by an independent review of c3df552):
// woken at random, events split mid-chunk, while an upgrade passes them or
// Close or a stop's grace ends them.

// TestParkedStreamsWokenAtRandomThroughAPass: streams parked and woken at
// random while PassConnections passes them:
// every event reaches its client once, in order, and both processes end
// with nothing in flight.
func TestParkedStreamsWokenAtRandomThroughAPass(t *testing.T) {
	for iter := range 4 {
		t.Run(fmt.Sprint(iter), func(t *testing.T) {
			in := startStreamInstance(t)
			up := startUpgradePair(t, in.ln.Addr().String())
			const n = 12
			cls := make([]*client, n)
			resps := make([]*http.Response, n)
			ends := make([]*streamEnd, n)
			for i := range n {
				cls[i], resps[i] = openEvents(t, up.old.addr, "/events")
				ends[i] = in.end(t)
			}
			waitParked(t, up.old.srv, n)
			var wg sync.WaitGroup
			const events = 8
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewSource(int64(i + iter*100)))
					for k := range events {
						time.Sleep(time.Duration(r.Intn(120)) * time.Millisecond)
						ev := fmt.Sprintf("data: %d-%d\n\n", i, k)
						// split in the middle, sometimes
						if r.Intn(2) == 0 {
							fmt.Fprintf(ends[i], "%x\r\n%s", len(ev), ev[:4])
							time.Sleep(time.Duration(r.Intn(120)) * time.Millisecond)
							fmt.Fprintf(ends[i], "%s\r\n", ev[4:])
						} else {
							fmt.Fprintf(ends[i], "%x\r\n%s\r\n", len(ev), ev)
						}
					}
				}()
			}
			var passed atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			time.Sleep(time.Duration(iter*40) * time.Millisecond)
			go up.old.srv.PassConnections(ctx, passToSet(up.next.srv, up.nextSet, &passed))
			for i := range n {
				for k := range events {
					expectEvent(t, cls[i], resps[i], fmt.Sprintf("%d-%d", i, k))
				}
			}
			wg.Wait()
			for i := range n {
				ends[i].finish()
				expectBodyEnd(t, cls[i], resps[i])
			}
			waitUntil(t, "old done", func() bool { return up.old.srv.connCount() == 0 })
			for _, b := range up.nextSet.Backends() {
				waitUntil(t, "next inflight 0", func() bool { return b.Inflight() == 0 })
			}
			t.Logf("passed %+v", up.old.srv.PassStats())
		})
	}
}

// TestParkedStreamsWokenAtRandomAtClose: streams parked and woken at
// random while Close (or a stop's end of grace) ends them: one log line
// each, nothing in flight after.
func TestParkedStreamsWokenAtRandomAtClose(t *testing.T) {
	for iter := range 6 {
		t.Run(fmt.Sprint(iter), func(t *testing.T) {
			log, path := openAccessLog(t)
			in := startStreamInstance(t)
			set := setOfAddr(t, "web", in.ln.Addr().String())
			f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: set, AccessLog: log})
			const n = 12
			ends := make([]*streamEnd, n)
			for i := range n {
				openEvents(t, f.addr, "/events")
				ends[i] = in.end(t)
			}
			waitParked(t, f.srv, n)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewSource(int64(i + iter*100)))
					for k := 0; ; k++ {
						select {
						case <-stop:
							return
						case <-time.After(time.Duration(r.Intn(80)) * time.Millisecond):
						}
						ev := fmt.Sprintf("data: %d-%d\n\n", i, k)
						if _, err := fmt.Fprintf(ends[i], "%x\r\n%s\r\n", len(ev), ev); err != nil {
							return
						}
					}
				}()
			}
			time.Sleep(time.Duration(100+iter*37) * time.Millisecond)
			if iter%2 == 0 {
				f.srv.Close()
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				f.srv.Shutdown(ctx)
				cancel()
			}
			waitUntil(t, "nothing left", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
			close(stop)
			wg.Wait()
			for _, b := range set.Backends() {
				waitUntil(t, "inflight 0", func() bool { return b.Inflight() == 0 })
			}
			log.Close()
			b, _ := os.ReadFile(path)
			if lines := strings.Count(string(b), "\n"); lines != n {
				t.Fatalf("%d log lines, want %d:\n%s", lines, n, b)
			}
		})
	}
}

// TestParkedStreamForAnHTTP10Client: a body up to the close, to an
// HTTP/1.0 client, is parked and taken up as any other, and ends with the
// instance's close.
func TestParkedStreamForAnHTTP10Client(t *testing.T) {
	in := startStreamInstance(t)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	cl := dial(t, f.addr)
	io.WriteString(cl.c, "GET /events-close HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	expectEvent(t, cl, resp, "first")
	end := in.end(t)
	waitParked(t, f.srv, 1)
	writeEvent(end, false, "second")
	expectEvent(t, cl, resp, "second")
	waitParked(t, f.srv, 1)
	end.Close()
	expectBodyEnd(t, cl, resp)
	expectClosed(t, cl, "an HTTP/1.0 stream, ended")
}
