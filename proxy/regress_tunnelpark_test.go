package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Found by an independent review of the parking of tunnels (d566e0b).

// upgradeTLSTunnel opens a WebSocket tunnel over TLS to f, for a.test.
func upgradeTLSTunnel(t *testing.T, f *tlsFixture) *client {
	t.Helper()
	nc, err := net.Dial("tcp", f.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(nc, &tls.Config{RootCAs: f.roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	t.Cleanup(func() { tc.Close() })
	cl := &client{t: t, c: tc, br: bufio.NewReader(tc)}
	io.WriteString(tc, "GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, err := http.ReadResponse(cl.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return cl
}

// TestTLSTunnelGoesOnThroughPassConnections: a TLS tunnel is not passed,
// and PassConnections leaves it alone: both directions go on, and one
// whose write to a client that does not read was waiting loses nothing.
// (It interrupted them: one direction's end could be missed, and a
// tls.Conn's interrupted write fails for good, which the tunnel retried
// at full CPU.)
func TestTLSTunnelGoesOnThroughPassConnections(t *testing.T) {
	for _, park := range []time.Duration{-1, 50 * time.Millisecond} {
		t.Run(fmt.Sprintf("parkAfter=%v", park), func(t *testing.T) {
			in := startTunnelInstance(t)
			f := startTLSProxy(t, Options{parkAfter: park}, Route{Port: 2, Hosts: []string{"a.test"}, Set: setOfAddr(t, "a", in.ln.Addr().String())})
			cl := upgradeTLSTunnel(t, f)
			end := in.end(t)
			echo(t, cl.c, cl.br, "hello")
			// The instance sends more than the sockets hold; the client
			// reads none of it yet.
			big := strings.Repeat("z", 1<<20) + "\n"
			go func() {
				for range 4 {
					if _, err := io.WriteString(end, big); err != nil {
						return
					}
				}
			}()
			time.Sleep(200 * time.Millisecond)
			// PassConnections waits for the tunnel, which it does not pass,
			// until its context ends: when the test is done with it, not
			// after a time a loaded machine may take to relay the bytes.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go f.srv.PassConnections(ctx, func(*Handover) error { return errors.New("refused") })
			time.Sleep(200 * time.Millisecond)
			cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i := range 4 {
				if line, err := cl.br.ReadString('\n'); line != big || err != nil {
					t.Fatalf("big line %d after PassConnections: %d bytes, %v", i, len(line), err)
				}
			}
			for i := range 5 {
				echo(t, cl.c, cl.br, fmt.Sprintf("after %d", i))
			}
		})
	}
}

// TestCloseRacingParkingTunnelsLeavesNone: Close as many tunnels park at
// once closes every one of them; none stays parked with its sockets
// closed, never woken and never forgotten.
func TestCloseRacingParkingTunnelsLeavesNone(t *testing.T) {
	in := startTunnelInstance(t)
	f := startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
	cls := make([]*client, 150)
	for i := range cls {
		cls[i] = upgradeTunnel(t, f.addr)
		in.end(t)
	}
	var wg sync.WaitGroup
	for _, cl := range cls {
		wg.Go(func() { echo(t, cl.c, cl.br, "x") }) // all quiet from the same moment
	}
	wg.Wait()
	for deadline := time.Now().Add(time.Second); f.srv.parker.count() == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
	f.srv.Close()
	waitUntil(t, "every tunnel closed and forgotten", func() bool { return f.srv.connCount() == 0 && f.srv.parker.count() == 0 })
	for i, cl := range cls {
		expectClosed(t, cl, fmt.Sprintf("tunnel %d after Close", i))
	}
}
