package proxy

import (
	"os"
	"strings"
	"testing"
)

// A stream passed at an upgrade and parked by the taker: its end (or
// Close) writes no access log line there, releases the instance's count,
// and pools the instance's connection only when the stream ended cleanly.
func TestPassedParkedStreamEnd(t *testing.T) {
	for _, how := range []string{"finish", "close"} {
		t.Run(how, func(t *testing.T) {
			in := startStreamInstance(t)
			addr := in.ln.Addr().String()
			oldLog, oldPath := openAccessLog(t)
			nextLog, nextPath := openAccessLog(t)
			nextSet := setOfAddr(t, "s", addr)
			up := &upgradePair{
				old:     startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: setOfAddr(t, "s", addr), AccessLog: oldLog}),
				next:    startProxy(t, parkOpts(Options{}), Route{Port: 1, Set: nextSet, AccessLog: nextLog}),
				nextSet: nextSet,
			}
			cl, resp := openEvents(t, up.old.addr, "/events")
			end := in.end(t)
			waitParked(t, up.old.srv, 1)
			up.passAll(t, false)
			waitUntil(t, "the old process done with it", func() bool { return up.old.srv.connCount() == 0 })
			waitParked(t, up.next.srv, 1)
			b := nextSet.Backends()[0]
			if n := b.Inflight(); n != 1 {
				t.Fatalf("in flight %d, want 1", n)
			}
			writeEvent(end, true, "after")
			expectEvent(t, cl, resp, "after")
			waitParked(t, up.next.srv, 1)
			if how == "finish" {
				end.finish()
				expectBodyEnd(t, cl, resp)
				if _, body, err := cl.do(get("x", "/next")); err != nil || body != "ok /next" {
					t.Fatalf("next: %q %v", body, err)
				}
				waitUntil(t, "nothing in flight", func() bool { return b.Inflight() == 0 })
				expectOneLogLine(t, nextLog, nextPath, `"GET /next HTTP/1.1" 200 `)
			} else {
				up.next.srv.Close()
				waitUntil(t, "nothing in flight", func() bool { return b.Inflight() == 0 })
				waitUntil(t, "instance's end closed", func() bool { return in.closed.Load() == 1 })
				nextLog.Close()
				if data, _ := os.ReadFile(nextPath); len(strings.TrimSpace(string(data))) != 0 {
					t.Fatalf("next's access log: %q, want nothing", data)
				}
			}
			expectOneLogLine(t, oldLog, oldPath, `"GET /events HTTP/1.1" 200 `)
		})
	}
}
