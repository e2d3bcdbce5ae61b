package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"smoothserve/connpass"
	"smoothserve/proxy"
	"smoothserve/upstream"
)

// This file is the connections' side of an upgrade: the old process passes
// its clients' connections and its idle connections to the instances over
// a connpass pair; the new one takes them.

// takeConnections takes the connections the previous smoothserve passes as
// it hands over: it serves the clients' and pools the idle ones to the
// instances.
func (d *Daemon) takeConnections(f *os.File) {
	var clients, tunnels, streams, idle, dropped int
	err := connpass.Receive(f, func(it connpass.Item) {
		switch it.Kind {
		case connpass.Client, connpass.Tunnel, connpass.Stream:
			h := &proxy.Handover{Port: it.Port, Client: it.Conn, Buffered: it.Buffered,
				InstanceAddr: it.Addr, InstanceBuffered: it.InstanceBuffered, Stream: it.State}
			if it.Instance != nil {
				s, ok := it.Instance.(upstream.Socket)
				if !ok {
					it.Conn.Close()
					it.Instance.Close()
					dropped++
					return
				}
				h.Instance, h.Backend = s, d.backendAt(it.Addr)
			}
			if err := d.px.ServeHandover(h); err != nil {
				d.log.Warn("a passed connection could not be served; closed", "kind", string(it.Kind), "port", it.Port, "err", err)
				it.Conn.Close()
				if it.Instance != nil {
					it.Instance.Close()
				}
				dropped++
				return
			}
			switch it.Kind {
			case connpass.Client:
				clients++
			case connpass.Tunnel:
				tunnels++
			default:
				streams++
			}
		case connpass.Counters:
			var c counters
			if err := json.Unmarshal(it.State, &c); err != nil {
				d.log.Warn("the previous smoothserve's counters cannot be read; the metrics start from 0", "err", err)
				return
			}
			d.goOnFrom(c)
		case connpass.Idle:
			s, ok := it.Conn.(upstream.Socket)
			b := d.backendAt(it.Addr)
			if !ok || b == nil {
				it.Conn.Close()
				dropped++
				return
			}
			b.AddIdle(s)
			idle++
		}
	})
	d.log.Info("took over the previous smoothserve's connections", "clients", clients, "tunnels", tunnels,
		"streams", streams, "to_instances", idle, "dropped", dropped)
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
	d.passCounters(pass) // at once, so the new process's metrics do not start from 0
	defer func() {
		// And the final ones, the drain's included: its access log
		// lines written or counted dropped first, for a second at most.
		fctx, cancel := context.WithTimeout(context.Background(), time.Second)
		d.flushLogs(fctx)
		cancel()
		d.passCounters(pass)
	}()
	d.passIdle(pass)
	err := d.px.PassConnections(ctx, func(h *proxy.Handover) error {
		client, ok := h.Client.(syscall.Conn)
		if !ok {
			return fmt.Errorf("a %T cannot be passed", h.Client)
		}
		if h.Instance == nil && h.Waiting {
			return pass.SendWaiting(h.Port, h.Buffered, client) // ahead of the idle ones
		}
		if h.Instance == nil {
			return pass.Send(h.Port, h.Buffered, client)
		}
		kind := connpass.Stream
		if h.Tunnel() {
			kind = connpass.Tunnel
		}
		return pass.SendJoined(connpass.Joined{Kind: kind, Port: h.Port, Buffered: h.Buffered, Client: client,
			Addr: h.InstanceAddr, Instance: h.Instance, InstanceBuffered: h.InstanceBuffered, State: h.Stream})
	})
	st := d.px.PassStats()
	d.log.Info("passed the connections to the new smoothserve", "clients", st.Clients, "tunnels", st.Tunnels,
		"streams", st.Streams, "failed_kept_here", st.Failed, "cut_at_drain_timeout", st.Cut)
	return err
}

// passCounters sends this process's counters to the new one.
func (d *Daemon) passCounters(pass *connpass.Sender) {
	b, err := json.Marshal(d.snapshot())
	if err == nil {
		err = pass.SendCounters(b)
	}
	if err != nil {
		d.log.Warn("the counters are not passed: the new smoothserve's metrics start from 0", "err", err)
	}
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
					if err := pass.SendIdle(b.Addr, c.Socket); err != nil {
						d.log.Warn("passing idle connections to the instances failed; closing them", "err", err)
						failed = true
					}
				}
				c.Close()
			}
		}
	}
}
