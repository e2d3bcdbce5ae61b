package certs

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/syncbuf"
	"smoothserve/internal/tcptest"
	"smoothserve/internal/testcert"
)

// writePair writes a self-signed pair for names with serial to dir.
func writePair(t *testing.T, dir string, serial int64, names ...string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := testcert.SelfSigned(serial, 24*time.Hour, names...)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Written beside, then renamed: as certbot swaps them.
	for name, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(name+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name+".new", name); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func newManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{Dir: filepath.Join(t.TempDir(), "certs"), Directory: "https://127.0.0.1:1/dir",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

func serialFor(t *testing.T, m *Manager, name string) int64 {
	t.Helper()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil || c == nil {
		return -1
	}
	return c.Leaf.SerialNumber.Int64()
}

func TestFilePairsAreChosenBySNIAndReadAgainWhenTheyChange(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, 1, "a.test", "*.b.test")
	m := newManager(t)
	if err := m.Set([]Site{{Service: "s", Names: []string{"a.test", "*.b.test"}, CertFile: cert, KeyFile: key}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int64{"a.test": 1, "A.TEST.": 1, "x.b.test": 1, "b.test": -1, "c.test": -1} {
		if got := serialFor(t, m, name); got != want {
			t.Errorf("%s: serial %d, want %d (-1: no certificate)", name, got, want)
		}
	}
	writePair(t, dir, 2, "a.test", "*.b.test")
	deadline := time.Now().Add(3 * pollEvery)
	for serialFor(t, m, "a.test") != 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := serialFor(t, m, "a.test"); got != 2 {
		t.Fatalf("after the files changed: serial %d, want 2 within %v", got, 3*pollEvery)
	}
	// A broken pair (a key of another certificate) is not served: the one
	// in use stays.
	other := t.TempDir()
	_, otherKey := writePair(t, other, 3, "a.test")
	kb, _ := os.ReadFile(otherKey)
	os.WriteFile(key, kb, 0o600)
	time.Sleep(2*pollEvery + 200*time.Millisecond)
	if got := serialFor(t, m, "a.test"); got != 2 {
		t.Fatalf("after a mismatched key was written: serial %d, want 2 kept", got)
	}
}

// A valid pair, key and all, for other names (a renewal for b.test copied
// over a.test's files) fails every handshake for a.test and every later
// --check: it is kept out like a broken pair, and the log says which file
// does not cover which name. A good pair after it is served.
func TestAChangedPairThatDoesNotCoverTheNamesIsKeptOut(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, 1, "a.test")
	log := &syncbuf.Buffer{}
	m, err := New(Options{Dir: filepath.Join(t.TempDir(), "certs"), Directory: "https://127.0.0.1:1/dir",
		Logger: slog.New(slog.NewTextHandler(log, nil))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	if err := m.Set([]Site{{Service: "s", Names: []string{"a.test"}, CertFile: cert, KeyFile: key}}); err != nil {
		t.Fatal(err)
	}

	writePair(t, dir, 2, "b.test")
	want := "certificate " + cert + " does not cover a.test (it covers b.test)"
	deadline := time.Now().Add(3 * pollEvery)
	for !strings.Contains(log.String(), want) && time.Now().Before(deadline) {
		if got := serialFor(t, m, "a.test"); got != 1 {
			t.Fatalf("after a pair for b.test was written: a.test is served serial %d, want the one in use, 1\n%s", got, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(log.String(), want) {
		t.Fatalf("%v after a pair for b.test was written, the log does not say %q:\n%s", 3*pollEvery, want, log.String())
	}
	if got := serialFor(t, m, "a.test"); got != 1 {
		t.Fatalf("after a pair for b.test was kept out: a.test is served serial %d, want the one in use, 1", got)
	}

	writePair(t, dir, 3, "a.test")
	deadline = time.Now().Add(3 * pollEvery)
	for serialFor(t, m, "a.test") != 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := serialFor(t, m, "a.test"); got != 3 {
		t.Fatalf("after a good pair followed the one kept out: serial %d, want 3 within %v", got, 3*pollEvery)
	}
}

func TestSetReportsABadPairAndServesTheRest(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, 7, "good.test")
	m := newManager(t)
	err := m.Set([]Site{
		{Service: "good", Names: []string{"good.test"}, CertFile: cert, KeyFile: key},
		{Service: "bad", Names: []string{"bad.test"}, CertFile: filepath.Join(dir, "missing.pem"), KeyFile: key},
	})
	if err == nil {
		t.Fatal("Set with a missing certificate file: no error")
	}
	if got := serialFor(t, m, "good.test"); got != 7 {
		t.Errorf("good.test: serial %d, want 7", got)
	}
}

func TestTicketKeysGoToTheNextProcess(t *testing.T) {
	m := newManager(t)
	f, err := m.TicketKeysFile()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next, err := New(Options{Dir: filepath.Join(t.TempDir(), "c"), Directory: "https://127.0.0.1:1/dir",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Stop()
	if len(next.tickets) != 1 || next.tickets[0] != m.tickets[0] {
		t.Fatalf("the next manager's keys %x, want the first's %x", next.tickets, m.tickets)
	}
}

// A handshake for a name no TLS service has, or with no name (a client
// connecting by address sends no SNI), is refused with the alert that says
// so, not an internal error.
func TestAnUnknownNameIsRefusedAsUnrecognized(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, 1, "a.test")
	m := newManager(t)
	if err := m.Set([]Site{{Service: "s", Names: []string{"a.test"}, CertFile: cert, KeyFile: key}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c.test", ""} {
		srv, cl := net.Pipe()
		go func() {
			tls.Server(srv, m.TLSConfig()).Handshake()
			srv.Close()
		}()
		err := tls.Client(cl, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake()
		cl.Close()
		if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
			t.Errorf("SNI %q: handshake error %v, want the unrecognized_name alert", name, err)
		}
	}
}

// A client connecting by address sends no SNI: the address it came to is
// the name, so a service whose server_name is that address is served (as
// Caddy does), and a handshake by address stays refused where no service
// names it.
func TestNoSNIIsTheAddressConnectedTo(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, 7, "127.0.0.1")
	m := newManager(t)
	if err := m.Set([]Site{{Service: "s", Names: []string{"127.0.0.1"}, CertFile: cert, KeyFile: key}}); err != nil {
		t.Fatal(err)
	}
	addr := tcptest.Serve(t, func(c net.Conn) { tls.Server(c, m.TLSConfig()).Handshake() })
	handshake := func() (*tls.ConnectionState, error) {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	st, err := handshake()
	if err != nil {
		t.Fatalf("no SNI to 127.0.0.1, which service s names: %v", err)
	}
	if got := st.PeerCertificates[0].SerialNumber.Int64(); got != 7 {
		t.Errorf("no SNI to 127.0.0.1: certificate serial %d, want 7", got)
	}

	other, otherKey := writePair(t, t.TempDir(), 8, "a.test")
	if err := m.Set([]Site{{Service: "s", Names: []string{"a.test"}, CertFile: other, KeyFile: otherKey}}); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("no SNI to 127.0.0.1, which no service names: handshake error %v, want the unrecognized_name alert", err)
	}
}
