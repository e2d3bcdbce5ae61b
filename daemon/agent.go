package daemon

import (
	"context"
	"net"
	"strconv"

	"smoothserve/agent"
	"smoothserve/control/api"
)

// The agent port (AgentPort, on ProxyAddr): HAProxy's agent-check asks it
// whether to send this host traffic. Opened through the upgrader like the
// proxy's ports, so that the next smoothserve inherits it.

// listenAgent opens (or inherits) the agent port, if set.
func (d *Daemon) listenAgent() error {
	cfg := d.config()
	if cfg.AgentPort == 0 {
		return nil
	}
	ln, err := d.upg.ListenTCP(net.JoinHostPort(cfg.ProxyAddr, strconv.Itoa(cfg.AgentPort)))
	if err != nil {
		return err
	}
	d.agentLn = ln
	return nil
}

// serveAgent serves the agent port, if any, until stopAgent.
func (d *Daemon) serveAgent() {
	ctx, cancel := context.WithCancel(context.Background())
	d.agentStop, d.agentDone = cancel, make(chan struct{})
	if d.agentLn == nil {
		close(d.agentDone)
		return
	}
	go func() {
		defer close(d.agentDone)
		if err := agent.Serve(ctx, d.agentLn, d.agentState); err != nil {
			d.log.Error("the agent port stopped", "addr", d.agentLn.Addr().String(), "err", err)
		}
	}()
}

// stopAgent ends the agent port's answers; it may be called again.
func (d *Daemon) stopAgent() {
	if d.agentStop == nil {
		return
	}
	d.agentStop()
	<-d.agentDone
}

// agentState is what the agent answers: up and ready while serving, drain
// while draining, maint while smoothserve stops.
func (d *Daemon) agentState() agent.State {
	ok, state := d.host.serving()
	switch {
	case ok:
		return agent.Serving
	case state == api.HostDraining || state == api.HostDrained:
		return agent.Draining
	}
	return agent.Maintenance
}
