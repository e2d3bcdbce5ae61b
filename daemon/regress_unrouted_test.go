package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"smoothserve/config"
	"smoothserve/proxy"
	"smoothserve/upstream"
)

// TestRegressAPortWithoutServicesLogsItsRequests: ProxyPort is listened
// on even when no service uses it (Config.ProxyPorts); README says requests
// no service takes are logged in AccessLog: a 404 there was in no log.
func TestRegressAPortWithoutServicesLogsItsRequests(t *testing.T) {
	dir := t.TempDir()
	access := filepath.Join(dir, "access.log")
	web := &config.Service{Name: "web", Enabled: true, Port: 8081, ServerNames: []string{"web.test"}}
	api := &config.Service{Name: "api", Enabled: true, Port: 8081, ServerNames: []string{"api.test"}}
	cfg := &config.Config{Dir: dir, ProxyPort: 8080, AccessLog: access, AccessLogFormat: "combined",
		Services: []*config.Service{web, api}}
	if got := cfg.ProxyPorts(); len(got) != 2 || got[0] != 8080 {
		t.Fatalf("ProxyPorts = %v, want 8080 listened on too", got)
	}
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), sets: map[string]*upstream.Set{}, applying: map[string]*sync.Mutex{}}
	for _, svc := range cfg.Services {
		d.sets[svc.Name] = upstream.NewSet(svc.Name, time.Second)
	}
	px, err := proxy.New(proxy.Options{Logger: d.log}, routesFor(cfg, d.sets, d.logFor))
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{8080, 8081} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go px.Serve(ln, port)
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /port"+strconv.Itoa(port)+" HTTP/1.1\r\nHost: nobody.test\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 404") {
			t.Fatalf("port %d answered %q", port, b)
		}
	}
	// A connection hands its lines to the log as it ends, a moment after
	// its client read the answer (later on a loaded machine): the log is
	// closed once it has both, or after 10 s.
	wants := []string{`"GET /port8081 HTTP/1.1" 404`, `"GET /port8080 HTTP/1.1" 404`}
	lg := d.logs.get(access)
	if lg == nil {
		t.Fatalf("no access log open at %s", access)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		lg.Flush(ctx)
		cancel()
		b, _ := os.ReadFile(access)
		if strings.Contains(string(b), wants[0]) && strings.Contains(string(b), wants[1]) {
			break
		}
	}
	px.Close()
	d.closeLogs()
	b, _ := os.ReadFile(access)
	for _, want := range wants {
		if !strings.Contains(string(b), want) {
			t.Errorf("access.log lacks %s:\n%s", want, b)
		}
	}
}
