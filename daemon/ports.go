package daemon

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"

	"smoothserve/proxy"
	"smoothserve/upgrade"
)

// proxyPorts is the daemon's proxy listeners: the ports of the
// configuration it started with, and those a service's file named later
// (auto_restart). A listener is opened through the upgrader, so that the
// next smoothserve inherits it, and is served from the moment serve is
// called; the proxy closes them all when it shuts down. A port is never
// closed before: the upgrader keeps a copy of each socket for the next
// process, so a closed listener would still queue connections nobody
// accepts. A port no service uses any more answers "no service for this
// host" until the next upgrade, which opens only the ports its
// configuration names.
//
// Ownership: mu guards ln and serving; errs is written by the serving
// goroutines and read by the daemon's run loop.
type proxyPorts struct {
	addr string // ProxyAddr
	upg  *upgrade.Upgrader
	px   *proxy.Server
	errs chan error // why a listener stopped accepting, other than a shutdown

	mu      sync.Mutex
	ln      map[int]net.Listener
	tls     map[int]*tls.Config // the HTTPS port's
	serving bool
}

func newProxyPorts(addr string, upg *upgrade.Upgrader, px *proxy.Server) *proxyPorts {
	return &proxyPorts{addr: addr, upg: upg, px: px, errs: make(chan error, 1), ln: make(map[int]net.Listener), tls: make(map[int]*tls.Config)}
}

// open listens on port (or takes the listener inherited from the previous
// smoothserve), unless that is done already; it reports whether it opened
// one. Once serve has been called, a port opened is served at once. A port
// opened while an upgrade starts the next process is not inherited: that
// process fails to listen on it, and the upgrade fails with this process
// still serving.
//
// With cfg, the port serves TLS (the HTTPS port).
func (p *proxyPorts) open(port int, cfg *tls.Config) (opened bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.ln[port]; ok {
		return false, nil
	}
	ln, err := p.upg.ListenTCP(net.JoinHostPort(p.addr, strconv.Itoa(port)))
	if err != nil {
		return false, err
	}
	p.ln[port] = ln
	if cfg != nil {
		p.tls[port] = cfg
	}
	if p.serving {
		go p.serveOne(ln, port, p.tls[port])
	}
	return true, nil
}

// serve starts accepting on every port, and on each opened later.
func (p *proxyPorts) serve() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.serving {
		return
	}
	p.serving = true
	for port, ln := range p.ln {
		go p.serveOne(ln, port, p.tls[port])
	}
}

func (p *proxyPorts) serveOne(ln net.Listener, port int, cfg *tls.Config) {
	var err error
	if cfg != nil {
		err = p.px.ServeTLS(ln, port, cfg)
	} else {
		err = p.px.Serve(ln, port)
	}
	if errors.Is(err, proxy.ErrServerClosed) {
		// Shutting down: the proxy closed it, or (opened as it began)
		// refused it.
		ln.Close()
		return
	}
	select {
	case p.errs <- err:
	default: // one is enough: the daemon stops on the first
	}
}
