package tcptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Clients are goroutines that each make one call again and again until
// Stop, as clients that open a connection for each request do (a load
// balancer's checks), and count the calls that failed, by error.
//
// Ownership: each goroutine adds to asked and failed; mu guards errs.
type Clients struct {
	quit chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	asked, failed atomic.Int64
	mu            sync.Mutex
	errs          map[string]int
}

// StartClients starts n goroutines calling once; they are stopped at the
// test's end if not before.
func StartClients(t testing.TB, n int, once func() error) *Clients {
	c := &Clients{quit: make(chan struct{}), errs: map[string]int{}}
	t.Cleanup(func() { c.Stop() })
	for range n {
		c.wg.Go(func() {
			for {
				select {
				case <-c.quit:
					return
				default:
				}
				c.asked.Add(1)
				if err := once(); err != nil {
					c.failed.Add(1)
					c.mu.Lock()
					c.errs[err.Error()]++
					c.mu.Unlock()
				}
			}
		})
	}
	return c
}

// Tally is what Clients counted.
type Tally struct {
	Asked, Failed int64
	Errs          map[string]int // the failures by error text
}

func (t Tally) String() string {
	if t.Failed == 0 {
		return fmt.Sprintf("%d asked, 0 not answered", t.Asked)
	}
	return fmt.Sprintf("%d asked, %d not answered: %v", t.Asked, t.Failed, t.Errs)
}

// Stop ends the calls (those in progress finish) and returns the tally.
// It may be called again.
func (c *Clients) Stop() Tally {
	c.once.Do(func() { close(c.quit) })
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return Tally{Asked: c.asked.Load(), Failed: c.failed.Load(), Errs: c.errs}
}

// GetOK sends GET path for host on c (Connection: close), reads the
// answer to its end and wants a 200; it closes c. It waits at most 10 s.
func GetOK(c net.Conn, host, path string) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}
