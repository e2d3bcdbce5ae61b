package daemon

import (
	"smoothserve/accesslog"
	"smoothserve/certs"
	"smoothserve/config"
	"smoothserve/proxy"
	"smoothserve/upstream"
)

// This file is HTTPS's side of the daemon: the certificates of the TLS
// services (certs), kept in step with the running configuration, and the
// routes of the HTTPS port.

// newCerts makes the certificate manager of cfg, or nil without HTTPSPort.
// The certificates it cannot read or obtain now are logged: the other
// names are served.
func (d *Daemon) newCerts(cfg *config.Config) error {
	if cfg.HTTPSPort == 0 {
		return nil
	}
	tickets, err := d.upg.InheritedFile(ticketsFile)
	if err != nil {
		d.log.Warn("TLS session ticket keys", "err", err)
	}
	m, err := certs.New(certs.Options{
		Dir:        cfg.CertDir,
		Directory:  cfg.ACMEDirectory,
		Email:      cfg.ACMEEmail,
		CARoot:     cfg.ACMECARoot,
		ListenHost: cfg.ProxyAddr,
		HTTPPort:   challengePort(cfg),
		TLSPort:    cfg.HTTPSPort,
		Logger:     d.log,
	}, tickets)
	if err != nil {
		return err
	}
	d.certs = m
	d.setSites(cfg)
	return nil
}

// ticketsFile is the name under which a smoothserve passes its TLS session
// ticket keys to the one that replaces it.
const ticketsFile = "smoothserve-ticket-keys"

// passTickets passes the session ticket keys to the process an upgrade
// starts, so that its clients resume their sessions there.
func (d *Daemon) passTickets() {
	if d.certs == nil {
		return
	}
	f, err := d.certs.TicketKeysFile()
	if err == nil {
		err = d.upg.PassFile(ticketsFile, f)
		f.Close()
	}
	if err != nil {
		d.log.Warn("TLS session ticket keys are not passed: clients make new sessions after the upgrade", "err", err)
	}
}

// setSites gives the certificate manager the TLS services of cfg.
func (d *Daemon) setSites(cfg *config.Config) {
	if d.certs == nil {
		return
	}
	var sites []certs.Site
	for _, svc := range cfg.TLSServices() {
		sites = append(sites, certs.Site{Service: svc.Name, Names: svc.ServerNames, Auto: svc.TLS == config.TLSAuto,
			CertFile: svc.TLSCert, KeyFile: svc.TLSKey})
	}
	if err := d.certs.Set(sites); err != nil {
		d.log.Error("certificates", "err", err)
	}
}

// challengePort is the plain-HTTP port ACME HTTP-01 challenges come to:
// 80 if the proxy listens there, else the lowest port of a TLS service.
func challengePort(cfg *config.Config) int {
	port := 0
	for _, svc := range cfg.TLSServices() {
		if svc.Port == 80 {
			return 80
		}
		if port == 0 || svc.Port < port {
			port = svc.Port
		}
	}
	return port
}

// routesFor is the routing table of cfg's enabled services: each on its
// plain-HTTP port (redirecting to HTTPS when TLS is on and https_redirect
// says so), and the TLS ones on the HTTPS port too.
//
// logFor gives a service its access log, and a zero Service AccessLog's
// (nil: checking a table only).
func routesFor(cfg *config.Config, sets map[string]*upstream.Set, logFor func(*config.Config, *config.Service) *accesslog.Log) []proxy.Route {
	var routes []proxy.Route
	for _, svc := range cfg.Services {
		set := sets[svc.Name]
		if !svc.Enabled || set == nil {
			continue
		}
		r := proxy.Route{Port: svc.Port, Hosts: svc.ServerNames, Default: svc.DefaultServer, Set: set}
		if logFor != nil {
			r.AccessLog = logFor(cfg, svc)
		}
		if svc.TLS != config.TLSOff && cfg.HTTPSPort != 0 {
			if svc.HTTPSRedirect {
				r.HTTPSPort = cfg.HTTPSPort
			}
			routes = append(routes, proxy.Route{Port: cfg.HTTPSPort, Hosts: svc.ServerNames, Default: svc.DefaultServer, Set: set, AccessLog: r.AccessLog})
		}
		routes = append(routes, r)
	}
	if logFor == nil {
		return routes
	}
	// The requests no service takes (a host nobody claims, a head that
	// could not be parsed) on any port, ports without services included,
	// are logged in AccessLog, unless a service takes the port's unknown
	// hosts.
	return append(routes, proxy.Route{AccessLog: logFor(cfg, &config.Service{})})
}

// stopCerts ends certificate maintenance (renewals, watching files).
func (d *Daemon) stopCerts() {
	if d.certs != nil {
		d.certs.Stop()
	}
}
