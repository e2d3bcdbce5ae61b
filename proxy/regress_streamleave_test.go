package proxy

import (
	"log/slog"
	"strings"
	"testing"

	"smoothserve/internal/syncbuf"
)

// A client that leaves an event stream (a browser tab closed, an
// EventSource given up) is the client's doing, not the instance's: no
// warning of a failed instance, whether the stream was being relayed,
// parked, or passed at an upgrade. Before, each such leave logged
// "proxy: instance failed ... err=client closed the connection" (or, for
// a stream passed by the previous process, "a response passed by the
// previous process failed"), naming a healthy instance, once per client:
// found by closing curl -N on the demo's /events behind the real binary.
func TestAClientLeavingAStreamIsNoInstanceFailure(t *testing.T) {
	for _, how := range []string{"relayed", "parked", "passed"} {
		t.Run(how, func(t *testing.T) {
			in := startStreamInstance(t)
			var logs syncbuf.Buffer
			opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			var f *fixture
			switch how {
			case "relayed":
				f = startProxy(t, opts, Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
			case "parked":
				f = startProxy(t, parkOpts(opts), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())})
			case "passed":
				nextSet := setOfAddr(t, "s", in.ln.Addr().String())
				f = startProxy(t, parkOpts(opts), Route{Port: 1, Set: nextSet})
				up := &upgradePair{old: startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", in.ln.Addr().String())}), next: f, nextSet: nextSet}
				cl, _ := openEvents(t, up.old.addr, "/events")
				in.end(t)
				waitParked(t, up.old.srv, 1)
				up.passAll(t, false)
				waitUntil(t, "the stream passed", func() bool { return up.old.srv.PassStats().Streams == 1 })
				waitParked(t, f.srv, 1)
				leave(t, in, f, cl)
				noInstanceFailure(t, &logs)
				return
			}
			cl, _ := openEvents(t, f.addr, "/events")
			in.end(t)
			if how == "parked" {
				waitParked(t, f.srv, 1)
			}
			leave(t, in, f, cl)
			noInstanceFailure(t, &logs)
		})
	}
}

// leave closes cl's stream and waits until the proxy has closed the
// instance's end of it and closed the client's connection (after logging
// how the stream ended).
func leave(t *testing.T, in *streamInstance, f *fixture, cl *client) {
	t.Helper()
	cl.c.Close()
	waitUntil(t, "the instance's end of the stream closed", func() bool { return in.closed.Load() == 1 })
	waitUntil(t, "no request in flight", func() bool { return f.srv.InFlight() == 0 })
	waitUntil(t, "the client's connection closed", func() bool { return f.srv.connCount() == 0 })
}

func noInstanceFailure(t *testing.T, logs *syncbuf.Buffer) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("a client that left its stream was logged as a failure: %s", line)
		}
	}
}
