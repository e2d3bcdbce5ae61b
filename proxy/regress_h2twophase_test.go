package proxy

import (
	"context"
	"crypto/tls"
	"io"
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
