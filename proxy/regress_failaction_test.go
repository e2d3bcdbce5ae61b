package proxy

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"smoothserve/internal/syncbuf"
)

// A request an instance fails without answering, and that goes to no other
// instance, is logged with what was done and why: before, its "proxy:
// instance failed" line said action="" (a POST to an instance that closed
// the connection, or a GET whose retry failed too), found with an app that
// closes connections unanswered behind the real binary.
func TestAFailedRequestNotSentAgainSaysWhy(t *testing.T) {
	closer := func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}
	a, b := startInstance(t, "a", closer), startInstance(t, "b", closer)
	for _, tc := range []struct{ req, want string }{
		{get("x", "/"), `action="answered 502 (it was sent again once already)"`},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", `action="answered 502 (a POST is not sent again)"`},
	} {
		var logs syncbuf.Buffer
		f := startProxy(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, Route{Port: 1, Set: setOf(t, "s", a, b)})
		cl := dial(t, f.addr)
		resp, _, err := cl.do(tc.req)
		if err != nil || resp.StatusCode != 502 {
			t.Fatalf("%q: %v %v, want a 502", tc.req, resp, err)
		}
		var failed []string
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `msg="proxy: instance failed"`) {
				failed = append(failed, line)
			}
		}
		if len(failed) == 0 || !strings.Contains(failed[len(failed)-1], tc.want) {
			t.Errorf("%q: the instance failures logged:\n%s\nwant the last with %s", tc.req, strings.Join(failed, "\n"), tc.want)
		}
	}
}
