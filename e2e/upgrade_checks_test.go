package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkLoad asks one thing again and again, each time on a new
// connection, as a load balancer's health checks and smoothtool's calls
// do, and counts what was not answered.
type checkLoad struct {
	asked, failed atomic.Int64
	first         atomic.Value // the first failure's error
	quit          chan struct{}
	wg            sync.WaitGroup
}

// startChecks runs n clients that dial network/addr and GET path, each on
// a new connection, until stop; a request is answered if it gets 200.
func startChecks(n int, network, addr, path string) *checkLoad {
	l := &checkLoad{quit: make(chan struct{})}
	for range n {
		l.wg.Go(func() {
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				l.asked.Add(1)
				if err := checkOnce(network, addr, path); err != nil {
					l.failed.Add(1)
					l.first.CompareAndSwap(nil, err)
				}
			}
		})
	}
	return l
}

func checkOnce(network, addr, path string) error {
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: check\r\n\r\n", path); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

func (l *checkLoad) stop() string {
	close(l.quit)
	l.wg.Wait()
	s := fmt.Sprintf("%d asked, %d not answered", l.asked.Load(), l.failed.Load())
	if err := l.first.Load(); err != nil {
		s += fmt.Sprintf(" (the first: %v)", err)
	}
	return s
}

// Through upgrades, every check the admin listener (/health) and the
// control socket (status) accept is answered: the old daemon stops
// accepting as the new one is ready and answers what it had accepted,
// whose request may arrive only then. It used to close those unanswered
// (net/http's Shutdown), about one check in a hundred at each hand-over.
func TestChecksAreAnsweredThroughUpgrades(t *testing.T) {
	const upgrades = 6
	in, admin := startInstalledWithAdmin(t)
	health := startChecks(3, "tcp", admin, "/health")
	status := startChecks(2, "unix", filepath.Join(in.dir, "smoothserve.sock"), "/v1/status")
	time.Sleep(200 * time.Millisecond)
	for i := range upgrades {
		if _, _, err := upgradeBySIGHUP(in); err != nil {
			health.stop()
			status.stop()
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	hs, ss := health.stop(), status.stop()
	t.Logf("through %d upgrades: admin /health: %s; control socket status: %s", upgrades, hs, ss)
	if health.failed.Load() > 0 || health.asked.Load() == 0 {
		t.Errorf("admin /health through %d upgrades: %s", upgrades, hs)
	}
	if status.failed.Load() > 0 || status.asked.Load() == 0 {
		t.Errorf("control socket status through %d upgrades: %s", upgrades, ss)
	}
}
