package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"

	"smoothserve/connpass"
	"smoothserve/upstream"
)

// This file is the connections' side of an upgrade: the old process passes
// its clients' connections and its idle connections to the instances over
// a connpass pair; the new one takes them.

// takeConnections takes the connections the previous smoothserve passes as
// it hands over: it serves the clients' and pools the idle ones to the
// instances.
func (d *Daemon) takeConnections(f *os.File) {
	var clients, idle, dropped int
	err := connpass.Receive(f, func(it connpass.Item) {
		switch it.Kind {
		case connpass.Client:
			if err := d.px.ServeConn(it.Conn, it.Port, it.Buffered); err != nil {
				it.Conn.Close()
				dropped++
				return
			}
			clients++
		case connpass.Idle:
			tc, ok := it.Conn.(*net.TCPConn)
			b := d.backendAt(it.Addr)
			if !ok || b == nil {
				it.Conn.Close()
				dropped++
				return
			}
			b.AddIdle(tc)
			idle++
		}
	})
	d.log.Info("took over the previous smoothserve's connections", "clients", clients, "to_instances", idle, "dropped", dropped)
	if err != nil {
		d.log.Warn("taking over connections", "err", err)
	}
}

// backendAt is the backend of the instance at addr, or nil.
func (d *Daemon) backendAt(addr string) *upstream.Backend {
	for _, set := range d.setsNow() {
		for _, b := range set.Backends() {
			if b.Addr == addr {
				return b
			}
		}
	}
	return nil
}

// newPass makes the connpass pair of an upgrade and adds its receiving end
// to the files the new process inherits; the sending end is d.pass from
// now on (the hand-over may begin before Upgrade returns). Without a pair
// (nil), the clients' connections are closed at the hand-over as in a stop.
func (d *Daemon) newPass() *connpass.Sender {
	pass, f, err := connpass.NewPair()
	if err == nil {
		err = d.upg.PassFile(passFile, f)
		f.Close()
		if err != nil {
			pass.Close()
		}
	}
	if err != nil {
		d.log.Warn("client connections will be closed at the hand-over, not passed", "err", err)
		pass = nil
	}
	d.pass.Store(pass)
	return pass
}

// drain ends the proxy of a process being replaced: each client connection
// goes over to the new process when it is between two requests. Without a
// connpass pair (or for a connection it fails to pass) the connection is
// closed as in a stop. The connections to the instances idle now go over
// first, so that the clients' requests find them there instead of dialing;
// those still in use here are closed when this process exits. (Passing
// those too, each as its request ends, was tried: the hand-over took
// longer and the upgrade loop's p99 rose, for no throughput gained;
// bench/NOTES.md.)
func (d *Daemon) drain(ctx context.Context) error {
	pass := d.pass.Load()
	if pass == nil {
		return d.px.Shutdown(ctx)
	}
	defer pass.Close()
	d.passIdle(pass)
	return d.px.PassConnections(ctx, func(nc net.Conn, port int, buffered []byte) error {
		sc, ok := nc.(syscall.Conn)
		if !ok {
			return fmt.Errorf("a %T cannot be passed", nc)
		}
		return pass.Send(port, buffered, sc)
	})
}

// passIdle passes the pooled connections to the instances. After a
// failure the rest are closed instead.
func (d *Daemon) passIdle(pass *connpass.Sender) {
	failed := false
	for _, set := range d.setsNow() {
		for _, b := range set.Backends() {
			for _, c := range b.TakeIdle() {
				if c.R.Buffered() > 0 {
					// Bytes the instance sent unasked: not a connection to reuse.
					c.Close()
					continue
				}
				if !failed {
					if err := pass.SendIdle(b.Addr, c.TCPConn); err != nil {
						d.log.Warn("passing idle connections to the instances failed; closing them", "err", err)
						failed = true
					}
				}
				c.Close()
			}
		}
	}
}
