package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"smoothserve/internal/nofile"
	"smoothserve/internal/sockpeek"
)

// /proc/PID/limits as Linux 6 prints it.
const procLimits = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max processes             94733                94733                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
`

func TestParseNoFile(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
		err  bool
	}{
		{procLimits, 20000, false},
		{strings.Replace(procLimits, "20000                20000", "1024                 524288", 1), 1024, false},
		{"Max open files            unlimited            unlimited            files\n", -1, false},
		{"Limit  Soft Limit\nMax processes 1 1 processes\n", 0, true},
	} {
		got, err := parseNoFile(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("parseNoFile(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// One source address per idlePerSource connections, from 127.0.0.2.
func TestIdleSources(t *testing.T) {
	for n, want := range map[int]string{
		1:     "127.0.0.2",
		4000:  "127.0.0.2",
		4001:  "127.0.0.2 127.0.0.3",
		10000: "127.0.0.2 127.0.0.3 127.0.0.4",
	} {
		var got []string
		for _, ip := range idleSources(n) {
			got = append(got, ip.String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("idleSources(%d) = %v, want %s", n, got, want)
		}
	}
}

// KiB per connection is what the RSS grew by over the connections held,
// not those asked for.
func TestIdlePerConn(t *testing.T) {
	s := idleSample{conns: 10000, opened: 8000, before: 20000, busy: 100000, idle: 60000}
	if got := s.perConn(s.busy); got != 10 {
		t.Errorf("perConn(busy) = %v, want 10", got)
	}
	if got := s.perConn(s.idle); got != 5 {
		t.Errorf("perConn(idle) = %v, want 5", got)
	}
	if got := (idleSample{before: 5, idle: 9}).perConn(9); got != 0 {
		t.Errorf("perConn of no connection = %v, want 0", got)
	}
}

func TestIdleTableMarkdown(t *testing.T) {
	tb := &idleTable{base: "nginx"}
	add := func(name string, n, opened int, before, idle int64, failed int) {
		tb.row(name).add(idleSample{conns: n, opened: opened, before: before, busy: idle + 100, idle: idle, failed: failed, fdLimit: 20000,
			firstErr: map[bool]string{true: "dial tcp: connection refused"}[failed > 0]})
	}
	add("smoothserve", 1000, 1000, 18000, 34000, 0) // 16 KiB each
	add("smoothserve", 10000, 10000, 18000, 118000, 0)
	add("smoothserve", 10000, 10000, 18000, 138000, 0) // rounds: 10 and 12, median 11
	add("nginx", 1000, 1000, 30000, 30500, 0)
	add("nginx", 10000, 10000, 30000, 35500, 0)
	add("HAProxy", 1000, 1000, 20000, 21000, 0)
	add("HAProxy", 10000, 9990, 20000, 31000, 10)
	md := tb.markdown()
	for _, want := range []string{
		"| smoothserve | 16.00 | 32.00 | 11.00 | 20.00 | 17.6 MiB → 125.0 MiB | 11.01 | 0 | 0 | 20000 | 10.00 / 12.00 |",
		"| nginx | 0.50 | 1.00 | 0.55 | 1.00 | 29.3 MiB → 34.7 MiB | 0.56 | 0 | 0 | 20000 | 0.55 |",
		"| HAProxy | 1.00 | 2.00 | 1.10 | 2.00 | 19.5 MiB → 30.3 MiB | 1.11 | 0 | **10** | 20000 | 1.10 |",
		"- HAProxy, 10,000: 10 failed, the first: dial tcp: connection refused",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks\n%s\nin\n%s", want, md)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// openIdle holds the connections a server answers 200 on, counts the
// others as failed, and a connection the server closes later peeks as
// closed.
func TestOpenIdle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from demo\n")
	}))
	t.Cleanup(srv.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	conns, failed, err := openIdle(ctx, srv.Listener.Addr().String(), 150, idleSources(150), nil)
	if len(conns) != 150 || failed != 0 || err != nil {
		t.Fatalf("openIdle = %d held, %d failed, %v; want 150, 0, nil", len(conns), failed, err)
	}
	t.Cleanup(func() { closeIdle(conns) })
	for i, c := range conns {
		if st := peek(c); st != sockpeek.Quiet {
			t.Fatalf("connection %d: %v, want quiet", i, st)
		}
	}
	srv.CloseClientConnections()
	waitClosedIdle(t, conns[0])

	bad, failed, err := openIdle(ctx, failing.Listener.Addr().String(), 10, idleSources(10), nil)
	if len(bad) != 0 || failed != 10 || err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("openIdle of a server answering 503 = %d held, %d failed, %v; want 0, 10, an error naming the 503", len(bad), failed, err)
	}
}

// Over TLS, openIdle holds the connections after a handshake each, with
// Host the config's ServerName, and they peek quiet (the TCP connection's
// socket) until the server closes them: then its close_notify waits.
func TestOpenIdleTLS(t *testing.T) {
	hosts := make(chan string, 20)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
		io.WriteString(w, "hello from demo\n")
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conns, failed, err := openIdle(ctx, srv.Listener.Addr().String(), 20, idleSources(20), handshakeConfig(nil))
	if len(conns) != 20 || failed != 0 || err != nil {
		t.Fatalf("openIdle over TLS = %d held, %d failed, %v; want 20, 0, nil", len(conns), failed, err)
	}
	t.Cleanup(func() { closeIdle(conns) })
	if h := <-hosts; h != tlsHost {
		t.Errorf("Host %q, want %q", h, tlsHost)
	}
	if st := peek(conns[0]); st != sockpeek.Quiet {
		t.Fatalf("a held TLS connection: %v, want quiet", st)
	}
	srv.CloseClientConnections()
	waitClosedIdle(t, conns[0])
}

// openIdleAs of idleH2 holds HTTP/2 connections, each with one GET
// answered and nothing left unread, and sees one the server closes.
func TestOpenIdleH2(t *testing.T) {
	hosts := make(chan string, 20)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			hosts <- r.Host
		}
		io.WriteString(w, "hello from demo\n")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tc := handshakeConfig(nil)
	tc.NextProtos = []string{"h2"}
	conns, failed, err := openIdleAs(ctx, srv.Listener.Addr().String(), 20, idleSources(20), tc, idleH2)
	if len(conns) != 20 || failed != 0 || err != nil {
		t.Fatalf("openIdleAs(h2) = %d held, %d failed, %v; want 20, 0, nil", len(conns), failed, err)
	}
	t.Cleanup(func() { closeIdle(conns) })
	if h := <-hosts; h != tlsHost {
		t.Errorf("Host %q, want %q", h, tlsHost)
	}
	time.Sleep(100 * time.Millisecond)
	for i, c := range conns {
		if st := peek(c); st != sockpeek.Quiet {
			t.Fatalf("held HTTP/2 connection %d: %v, want quiet", i, st)
		}
	}
	srv.CloseClientConnections()
	waitClosedIdle(t, conns[0])
}

// waitClosedIdle fails unless c, which the server closed, counts as closed
// (closedIdle) within 5 s.
func waitClosedIdle(t *testing.T, c net.Conn) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !closedIdle(c) {
		if time.Now().After(deadline) {
			t.Fatal("a connection the server closed does not count as closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The connections part's limits reach nginx's and HAProxy's
// configurations; the other parts keep theirs.
func TestConfigLimits(t *testing.T) {
	render := func(name string, data configData) string {
		t.Helper()
		var b strings.Builder
		if err := templates.ExecuteTemplate(&b, name, data); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	plain := configData{Addr: benchAddr, Listen: "127.0.0.1:1", Upstreams: []string{"127.0.0.1:2"}, TLSListen: "127.0.0.1:3", TLSPEM: "x.pem"}
	many := plain
	many.MaxConns, many.FdLimit, many.Backlog = 16384, 20000, 4096
	for _, tt := range []struct {
		name, tmpl string
		data       configData
		want, not  []string
	}{
		{"nginx", "nginx.conf.tmpl", plain, []string{"worker_connections 4096;", "listen 127.0.0.1:1;"}, []string{"worker_rlimit_nofile", "backlog="}},
		{"nginx many", "nginx.conf.tmpl", many, []string{"worker_rlimit_nofile 20000;", "worker_connections 16384;", "listen 127.0.0.1:1 backlog=4096;"}, nil},
		{"HAProxy", "haproxy.cfg.tmpl", plain, []string{"    maxconn 4096\n"}, []string{"ulimit-n", "strict-limits", "16384"}},
		{"HAProxy many", "haproxy.cfg.tmpl", many, []string{"    maxconn 16384\n    ulimit-n 20000\n    no strict-limits\n", "http-reuse always\n    maxconn 16384\n"}, []string{"maxconn 4096"}},
	} {
		checkRendered(t, tt.name, render(tt.tmpl, tt.data), tt.want, tt.not)
	}
}

// The raised limit of open files is what a child gets, and what
// noFileLimit reads.
func TestRaiseNoFile(t *testing.T) {
	n, err := nofile.Raise()
	if err != nil {
		t.Fatal(err)
	}
	if got := childNoFile(); got != "unlimited" && got != strconv.FormatUint(n, 10) {
		t.Errorf("a child's soft limit %s, want %d", got, n)
	}
	if got := noFileLimit([]int{os.Getpid()}); uint64(got) != n && got != -1 {
		t.Errorf("noFileLimit(self) = %d, want %d", got, n)
	}
}
