package conformance

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// nginx and HAProxy as they are usually put in front of an application:
// HTTP/1.1 keep-alive to the upstream, Host and X-Forwarded-For passed on.
// One process (nginx) or one thread (HAProxy), so that an idle upstream
// connection a case leaves behind is the one the next request gets.

var nginxSetup = otherSetup{
	name: "nginx", command: "nginx", config: "nginx.conf",
	argv: func(dir, config string) []string {
		return []string{"nginx", "-p", dir + "/", "-e", filepath.Join(dir, "error.log"), "-c", config}
	},
	version: func() string { return commandVersion("nginx", "-v") },
	render: func(dir, listen, upstream string) string {
		return strings.NewReplacer("{dir}", dir, "{listen}", listen, "{upstream}", upstream).Replace(nginxConf)
	},
	stopSig: syscall.SIGQUIT,
}

const nginxConf = `daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    client_body_temp_path {dir}/temp/body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    upstream recorder {
        server {upstream};
        keepalive 8;
    }
    server {
        listen {listen};
        location / {
            proxy_pass http://recorder;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`

var haproxySetup = otherSetup{
	name: "haproxy", command: "haproxy", config: "haproxy.cfg",
	argv: func(dir, config string) []string {
		return []string{"haproxy", "-db", "-f", config}
	},
	version: func() string { return commandVersion("haproxy", "-v") },
	render: func(dir, listen, upstream string) string {
		return strings.NewReplacer("{listen}", listen, "{upstream}", upstream).Replace(haproxyConf)
	},
	stopSig: syscall.SIGTERM,
}

const haproxyConf = `global
    nbthread 1
defaults
    mode http
    option forwardfor
    http-reuse always
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 30s
frontend conformance
    bind {listen}
    default_backend recorder
backend recorder
    server rec {upstream}
`

// commandVersion is the version a proxy prints, e.g. "nginx/1.22.1".
func commandVersion(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	for _, f := range strings.Fields(line) {
		if strings.Contains(f, "/") || (len(f) > 0 && f[0] >= '0' && f[0] <= '9') {
			return strings.TrimPrefix(f, "nginx/")
		}
	}
	return line
}
