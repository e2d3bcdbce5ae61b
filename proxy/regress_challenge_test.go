package proxy

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smoothserve/certs"
)

// The proxy passes a challenge target it did not check to HTTPChallenge
// (certs.Manager.HTTPChallenge panics on it, see certs/review_challenge_test.go).
func TestRegressChallengeTargetReachesHTTPChallengeUnchecked(t *testing.T) {
	got := make(chan string, 1)
	f := startProxy(t, Options{HTTPChallenge: func(host, path string) ([]byte, bool) {
		got <- path
		return nil, false
	}})
	cl := dial(t, f.addr)
	cl.do(get("a.test", "/.well-known/acme-challenge/%zz"))
	select {
	case p := <-got:
		t.Errorf("HTTPChallenge was given the unparsable target %q", p)
	default:
	}
}

// End to end, in a child process: the proxy with the real certs.Manager as
// its HTTPChallenge dies of one plain-HTTP request.
func TestRegressChallengeRequestCrashesTheProcess(t *testing.T) {
	if os.Getenv("REVIEW_CHILD") == "1" {
		m, err := certs.New(certs.Options{Dir: filepath.Join(t.TempDir(), "certs"), Directory: "https://127.0.0.1:1/dir",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		f := startProxy(t, Options{HTTPChallenge: m.HTTPChallenge})
		cl := dial(t, f.addr)
		cl.do(get("a.test", "/.well-known/acme-challenge/%zz"))
		time.Sleep(200 * time.Millisecond)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRegressChallengeRequestCrashesTheProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REVIEW_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		i := strings.Index(string(out), "panic:")
		t.Errorf("the proxy process died: %v\n%s", err, string(out[max(i, 0):min(len(out), max(i, 0)+400)]))
	}
}
