package main

import (
	"context"
	"embed"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

//go:embed configs/*.tmpl
var configs embed.FS

var templates = template.Must(template.ParseFS(configs, "configs/*.tmpl"))

// benchAddr is the only address anything in the benchmark listens on.
const benchAddr = "127.0.0.1"

// A proxy is one of the servers compared, running.
type proxy struct {
	name   string
	url    string       // http://127.0.0.1:PORT, without a path
	tlsURL string       // https://localhost:PORT, its TLS port (tls.go)
	pids   func() []int // its processes now, whose peak RSS counts
	stop   func()       // graceful, then forced; idempotent
	// tlsDesc is what a Go client negotiated on tlsURL; noH2, why the
	// proxy has no HTTP/2 row ("" if it has).
	tlsDesc, noH2 string
}

// configData is what the templates of configs/ are rendered with.
type configData struct {
	Dir       string   // the proxy's own folder
	Addr      string   // benchAddr
	Port      int      // where the proxy listens
	Listen    string   // Addr:Port
	Upstreams []string // the demo instances, host:port

	// TLS (tls.go): the TLS port and the certificate's files.
	TLSPort                 int
	TLSListen               string // Addr:TLSPort
	TLSCert, TLSKey, TLSPEM string

	// smoothserve only.
	InstancePort, LastInstancePort int
	Demo                           string
	Compress                       bool // compress: true

	// AccessLog is the file of the access log (accesslog.go), combined
	// format; "": none (smoothserve AccessLog: off, nginx access_log off).
	AccessLog string

	// The connections part (connections.go), nginx and HAProxy: MaxConns
	// connections at once (nginx worker_connections, HAProxy maxconn; 0:
	// the templates' 4096), FdLimit open files (nginx
	// worker_rlimit_nofile), and nginx's listen backlog (0: its own, 511).
	MaxConns, FdLimit, Backlog int
}

// writeConfig renders template name into dir/file.
func writeConfig(name, dir, file string, data configData) (string, error) {
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("rendering %s: %w", name, err)
	}
	path := filepath.Join(dir, file)
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// proxySetup says how to run one of the other proxies.
type proxySetup struct {
	name     string
	template string
	file     string
	argv     func(dir, config string) []string
	stopSig  syscall.Signal
	// withChildren: the proxy forks workers, whose memory counts too.
	withChildren bool
}

var otherProxies = []proxySetup{
	{
		name: "nginx", template: "nginx.conf.tmpl", file: "nginx.conf",
		argv: func(dir, config string) []string {
			return []string{"nginx", "-p", dir + "/", "-e", filepath.Join(dir, "error.log"), "-c", config}
		},
		stopSig: syscall.SIGQUIT, withChildren: true,
	},
	{
		name: "HAProxy", template: "haproxy.cfg.tmpl", file: "haproxy.cfg",
		argv: func(dir, config string) []string {
			return []string{"haproxy", "-db", "-f", config}
		},
		stopSig: syscall.SIGTERM, // no load runs when it stops
	},
	{
		name: "Caddy", template: "Caddyfile.tmpl", file: "Caddyfile",
		argv: func(dir, config string) []string {
			return []string{"caddy", "run", "--config", config, "--adapter", "caddyfile"}
		},
		stopSig: syscall.SIGTERM,
	},
}

// proxyOptions are what a proxy's configuration has beyond plain HTTP.
type proxyOptions struct {
	// cert: a TLS port serving it, if cert.cert is set (only
	// nginx.conf.tmpl does without).
	cert tlsFiles
	// accessLog: an access log to this file, if set (nginx.conf.tmpl only).
	accessLog string
	// limits: the connections part's MaxConns, FdLimit and Backlog.
	limits connLimits
}

// startProxy writes the config of s into dir, starts it in front of
// upstreams with opts, and waits until it answers.
func startProxy(s proxySetup, dir string, upstreams []string, opts proxyOptions) (*proxy, error) {
	if err := mkdirs(dir); err != nil {
		return nil, err
	}
	data, err := listenData(dir, opts.cert)
	if err != nil {
		return nil, err
	}
	data.Upstreams, data.AccessLog = upstreams, opts.accessLog
	data.MaxConns, data.FdLimit, data.Backlog = opts.limits.maxConns, opts.limits.fdLimit, opts.limits.backlog
	listen := data.Listen
	config, err := writeConfig(s.template, dir, s.file, data)
	if err != nil {
		return nil, err
	}
	// HOME and XDG folders in dir: Caddy would write its data under $HOME.
	env := append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	c, err := startChild(s.name, filepath.Join(dir, "output.log"), env, s.argv(dir, config)...)
	if err != nil {
		return nil, err
	}
	p := &proxy{
		name:   s.name,
		url:    "http://" + listen,
		tlsURL: tlsURL(data.TLSPort),
		pids:   func() []int { return []int{c.pid()} },
		stop:   func() { c.stop(s.stopSig, 10*time.Second) },
	}
	if s.withChildren {
		p.pids = func() []int {
			pids := []int{c.pid()}
			for pid := range children(c.pid()) {
				pids = append(pids, pid)
			}
			return pids
		}
	}
	if err := waitServing(p.url, 15*time.Second, c); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s on %s: %w\n%s", s.name, listen, err, c.logTail())
	}
	return p, nil
}

// listenData is the configData of a proxy in dir: its plain and TLS
// ports, free now, and the certificate's files.
func listenData(dir string, cert tlsFiles) (configData, error) {
	port, err := freePort(benchAddr)
	if err != nil {
		return configData{}, err
	}
	tlsPort, err := freePort(benchAddr)
	for err == nil && tlsPort == port {
		tlsPort, err = freePort(benchAddr)
	}
	if err != nil {
		return configData{}, err
	}
	return configData{
		Dir: dir, Addr: benchAddr, Port: port, Listen: net.JoinHostPort(benchAddr, strconv.Itoa(port)),
		TLSPort: tlsPort, TLSListen: net.JoinHostPort(benchAddr, strconv.Itoa(tlsPort)),
		TLSCert: cert.cert, TLSKey: cert.key, TLSPEM: cert.pem,
	}, nil
}

// waitServing waits until GET url/ answers 200 with the demo's greeting,
// which shows that the proxy is up and reaches an instance.
func waitServing(url string, timeout time.Duration, c *child) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	var last error
	for {
		if c != nil {
			if done, err := c.exited(); done {
				return fmt.Errorf("exited: %v", err)
			}
		}
		last = checkGreeting(client, url)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving after %s: %w", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func checkGreeting(client *http.Client, url string) error {
	resp, err := client.Get(url + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "hello from demo") {
		return fmt.Errorf("GET /: %s %q", resp.Status, body)
	}
	return nil
}
