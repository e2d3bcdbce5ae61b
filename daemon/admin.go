package daemon

import (
	"context"
	"net"
	"net/http"
	"time"

	"smoothserve/admin"
	"smoothserve/internal/httpstop"
	"smoothserve/internal/nofile"
)

// The admin listener (AdminAddr): the status page, its actions, and the
// metrics. Opened through the upgrader like the proxy's ports, so that the
// next smoothserve inherits it; served from start until stop or release.

// listenAdmin opens (or inherits) AdminAddr, if set.
func (d *Daemon) listenAdmin() error {
	addr := d.config().AdminAddr
	if addr == "" {
		return nil
	}
	ln, err := d.upg.ListenTCP(addr)
	if err != nil {
		return err
	}
	d.adminLn = ln
	return nil
}

// serveAdmin serves the admin listener, if any, until stopAdmin.
func (d *Daemon) serveAdmin(ctl *daemonControl) {
	if d.adminLn == nil {
		return
	}
	var users []admin.User
	for _, u := range d.config().AdminAuth {
		users = append(users, admin.User{Name: u.User, Hash: u.Hash})
	}
	d.adminSrv = httpstop.New(&http.Server{
		Handler:           admin.New(admin.Options{Daemon: ctl, Users: users, Metrics: d.metricsHandler(), Health: d.host.serving, Logger: d.log}),
		ReadHeaderTimeout: 10 * time.Second,
	})
	go func(ln net.Listener) {
		room := nofile.Room(d.px.MakeRoom)
		if err := d.adminSrv.Serve(room.Listener(ln, "accepting on the admin listener "+ln.Addr().String())); err != nil {
			d.log.Error("the admin listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}(d.adminLn)
}

// stopAnswering ends the listeners a load balancer checks, the agent port
// and the admin listener (its /health), once the checks they took are
// answered (within a few seconds). At an upgrade the old process calls it
// as soon as the new one is ready, which answers them from then on, and
// before it releases its components: the supervisor's release lowers it
// to the idle class, where a check it had taken could wait past the end
// of its admin server. It may be called again.
func (d *Daemon) stopAnswering() {
	d.stopAgent()
	d.stopAdmin()
}

// stopAdmin stops accepting on the admin listener and answers every
// request of the connections it accepted (within a few seconds): at an
// upgrade the new process accepts from then on, and a check this one had
// accepted is answered here, not dropped. It may be called again.
func (d *Daemon) stopAdmin() {
	if d.adminSrv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d.adminSrv.Stop(ctx)
}
