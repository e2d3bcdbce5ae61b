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

// TestParkRacesShutdownDrain: clients park and wake at random while
// SetDraining flips and then Shutdown runs. Every request gets a whole
// answer or a closed connection (never a hang), Shutdown ends within its
// grace, and nothing is left parked or open.
func TestParkRacesShutdownDrain(t *testing.T) {
	for iter := range 8 {
		mode := []string{"drain", "shutdown", "pass", "close"}[iter%4]
		t.Run(fmt.Sprint(mode, iter), func(t *testing.T) {
			in := startInstance(t, "a", nil)
			next := startProxy(t, Options{}, Route{Port: 1, Set: setOf(t, "s", in)})
			f := startProxy(t, Options{parkAfter: 6 * time.Millisecond, IdleTimeout: 2 * time.Second, ShutdownGrace: 200 * time.Millisecond},
				Route{Port: 1, Set: setOf(t, "s", in)})
			const clients = 48
			var wg sync.WaitGroup
			var connected, answered, closed atomic.Int64
			stop := make(chan struct{})
			for i := range clients {
				wg.Go(func() {
					cl := dial(t, f.addr)
					connected.Add(1)
					defer cl.c.Close()
					r := rand.New(rand.NewPCG(uint64(i), uint64(iter)))
					for round := 0; ; round++ {
						select {
						case <-stop:
							return
						default:
						}
						time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
						path := fmt.Sprintf("/%d/%d", i, round)
						cl.c.SetDeadline(time.Now().Add(4 * time.Second))
						if _, err := io.WriteString(cl.c, get("x", path)); err != nil {
							closed.Add(1)
							return
						}
						resp, err := http.ReadResponse(cl.br, nil)
						if err != nil {
							if isTimeout(err) {
								t.Errorf("client %d round %d: no answer and not closed in 4s", i, round)
							}
							closed.Add(1)
							return
						}
						body, _ := io.ReadAll(resp.Body)
						if want := "a GET " + path; string(body) != want {
							t.Errorf("client %d: %q, want %q", i, body, want)
							return
						}
						answered.Add(1)
						if resp.Close {
							// must be closed now
							if _, err := cl.br.ReadByte(); err == nil || isTimeout(err) {
								t.Errorf("client %d: Connection: close but not closed (%v)", i, err)
							}
							closed.Add(1)
							return
						}
					}
				})
			}
			// Every client connected before the proxy stops listening
			// (a loaded machine may take its time to start them), then
			// asking at random for a while.
			waitUntil(t, "every client connected", func() bool { return connected.Load() == clients })
			time.Sleep(300 * time.Millisecond)
			if mode == "drain" {
				f.srv.SetDraining(true)
				time.Sleep(10 * time.Millisecond)
				f.srv.SetDraining(false)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			t0 := time.Now()
			var err error
			var passed atomic.Int64
			if mode == "pass" {
				err = f.srv.PassConnections(ctx, passTo(next.srv, &passed))
				time.Sleep(200 * time.Millisecond)
			} else if mode == "close" {
				f.srv.Close()
			} else {
				err = f.srv.Shutdown(ctx)
			}
			if err != nil {
				t.Errorf("Shutdown: %v after %v", err, time.Since(t0))
			}
			close(stop)
			wg.Wait()
			waitUntil(t, "nothing open or parked", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
			t.Logf("answered %d, closed %d, passed %d", answered.Load(), closed.Load(), passed.Load())
		})
	}
}
