package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A host that a reload moves to a service it adds, or from a service it
// removes, is served throughout, then by the service that takes it:
// moved from a service the reload rolls to one it adds (or enables),
// from a service removed to one it adds (a service renamed in its file),
// and from a service removed to one that runs. Before, the service that gave the
// host up still had it when the other came to take it (the reload added
// services in file order, after the rollouts of the services before
// them, and removed services last): the service taking it was refused
// ("host ... is claimed by A and B") and the host answered 404 until the
// next reload, or, moved from a running service to one added, 404 for the
// first one's whole rollout. Found by renaming a service in its file and
// running smoothtool reload under load.
func TestAReloadMovesAHostToAServiceAddedOrFromOneRemoved(t *testing.T) {
	for _, how := range []string{"moved", "renamed", "from removed", "to enabled"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, 1+5*2)
			e.service("api", "api.test", 1, "") // not alone on the port: that one would take every host
			e.service("web", "web.test, moved.test", 1, "")
			if how == "to enabled" {
				e.service("zeta", "zeta.test", 1, "enabled: false\n")
			}
			d := e.startDaemon()
			d.waitPids(e.proxyAddr(), "moved.test", 1, 15*time.Second)

			// A request in flight at web's instance: its rollout waits
			// for it, which is as long as the host would go unserved.
			slow := make(chan error, 1)
			go func() {
				code, _, err := httpGet(e.proxyAddr(), "web.test", "/slow?ms=1500")
				if err == nil && code != 200 {
					err = fmt.Errorf("status %d", code)
				}
				slow <- err
			}()
			time.Sleep(200 * time.Millisecond)

			stop := pollHost(e.proxyAddr(), "moved.test")
			var newPort int
			switch how {
			case "moved":
				e.service("web", "web.test", 1, "env:\n  DEMO_VERSION: \"2\"\n")
				newPort = e.service("zeta", "moved.test", 1, "")
			case "renamed":
				removeFile(t, filepath.Join(e.dir, "services", "web.yaml"))
				newPort = e.service("zeta", "web.test, moved.test", 1, "")
			case "to enabled":
				e.service("web", "web.test", 1, "env:\n  DEMO_VERSION: \"2\"\n")
				newPort = e.service("zeta", "zeta.test, moved.test", 1, "")
			case "from removed":
				removeFile(t, filepath.Join(e.dir, "services", "web.yaml"))
				newPort = e.service("api", "api.test, moved.test", 1, "")
			}
			code, out, errOut := e.tool("reload")
			for _, b := range stop() {
				t.Errorf("moved.test during the reload: %s", b)
			}
			if code != 0 || !strings.Contains(out, "web  removed\n") && !strings.Contains(out, "zeta  added\n") && !strings.Contains(out, "zeta  enabled\n") {
				t.Errorf("smoothtool reload: exit %d\n%s%s", code, out, errOut)
			}
			if err := <-slow; err != nil {
				t.Errorf("the request in flight at web during the reload: %v", err)
			}
			_, body, err := httpGet(e.proxyAddr(), "moved.test", "/")
			if err != nil || !strings.Contains(body, fmt.Sprintf("port=%d ", newPort)) && !strings.Contains(body, fmt.Sprintf("port=%d ", newPort+1)) {
				t.Errorf("moved.test after the reload: %q %v, want the instance of the service that took it (port %d or %d)", body, err, newPort, newPort+1)
			}
		})
	}
}

// pollHost asks addr for host's / every 10 ms until stop is called, which
// returns the failures seen (at most 100).
func pollHost(addr, host string) (stop func() []string) {
	bad := make(chan string, 100)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if status, body, err := httpGet(addr, host, "/"); err != nil || status != 200 {
				select {
				case bad <- fmt.Sprintf("%d %q %v", status, body, err):
				default:
				}
			}
		}
	}()
	return func() []string {
		close(quit)
		<-done
		close(bad)
		var l []string
		for b := range bad {
			l = append(l, b)
		}
		return l
	}
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
