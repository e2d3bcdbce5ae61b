package proxy

import (
	"io"
	"testing"
	"time"

	"smoothserve/upstream"
)

// An instance that takes the request and closes without answering (a
// crash mid-request). HTTP/1.1 retries a GET on the other instance, or
// answers 502; the bridge takes the instance's EOF for the client's
// (clientGone matches any net.Error or EOF) and resets the stream.
func TestRegressH2InstanceClosesWithoutAnswer(t *testing.T) {
	closer := mustListen(t)
	go func() {
		for {
			c, err := closer.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4096)
				c.Read(buf)
				c.Close()
			}()
		}
	}()
	live := startInstance(t, "live", nil)
	both := upstream.NewSet("s", time.Second)
	both.Add(upstream.NewBackend("s", 0, closer.Addr().String()))
	both.Add(upstream.NewBackend("s", 1, live.addr()))
	alone := setOfAddr(t, "alone", closer.Addr().String())
	f := startTLSProxy(t, Options{}, Route{Port: 2, Hosts: []string{"a.test"}, Set: both},
		Route{Port: 2, Hosts: []string{"b.test"}, Set: alone})
	for _, h2 := range []bool{false, true} {
		cl := f.client(h2)
		for i := range 4 {
			resp, err := cl.Get("https://a.test/")
			if err != nil {
				t.Errorf("h2=%v GET %d with one instance closing: %v", h2, i, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("h2=%v GET %d: %d %q", h2, i, resp.StatusCode, body)
			}
		}
		resp, err := cl.Get("https://b.test/")
		if err != nil {
			t.Errorf("h2=%v, the only instance closing: %v; want 502", h2, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Errorf("h2=%v, the only instance closing: %d, want 502", h2, resp.StatusCode)
		}
	}
}
