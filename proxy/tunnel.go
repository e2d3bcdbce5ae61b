package proxy

import (
	"bufio"
	"net"
	"time"

	"smoothserve/upstream"
)

// A tunnel (a WebSocket, after a 101) joins the client's connection to the
// instance's until either side ends it. It is not a request in flight: an
// instance's drain does not wait for it, and Shutdown does not either
// (the instance, told to stop, closes it as it sees fit, and its exit
// closes what is left). At an upgrade it is passed to the new process,
// both connections, with the bytes either side sent that the other has not
// received: each direction copies through its reader's buffer, and what it
// has read and not yet written stays there.

// tunnel relays between the client and the instance at addr over uc until
// either side ends, or the tunnel is passed to another process.
func (c *conn) tunnel(uc *upstream.Conn, addr string) {
	c.nc.SetDeadline(time.Time{}) // the connection ends with the tunnel
	c.srv.enterTunnel(c, uc)
	if c.passing() {
		c.interrupt() // PassConnections began before the tunnel was listed
	}
	up := make(chan error, 1)
	upOpen := true // the client has not ended its side
	for {
		if upOpen {
			go func() { up <- pumpUp(c.br, uc) }()
		}
		err := pump(uc.R, c.nc)
		if !isTimeout(err) {
			// The instance ended the tunnel (or the client is gone).
			c.nc.Close()
			uc.TCPConn.Close()
			if upOpen {
				<-up
			}
			return
		}
		// Interrupted, to be passed: wait for the other direction to stop
		// too (its deadlines were set as well).
		if upOpen {
			if uerr := <-up; !isTimeout(uerr) {
				upOpen = false
			}
		}
		if c.passing() && c.pass(&Handover{Instance: uc.TCPConn, InstanceAddr: addr, InstanceBuffered: uc.Unread()}, &c.srv.passStats.Tunnels) {
			return
		}
		c.nc.SetDeadline(time.Time{})
		uc.TCPConn.SetDeadline(time.Time{})
	}
}

// interrupt stops both directions of a tunnel, where they stand, for
// passing it: reads and writes on both connections time out at once.
// Called by Shutdown's goroutine as well as the tunnel's.
func (c *conn) interrupt() {
	now := time.Now()
	c.nc.SetDeadline(now)
	c.tun.Load().TCPConn.SetDeadline(now)
}

// pumpUp copies from the client to the instance until the client ends its
// side, which is then ended towards the instance, or an interruption.
func pumpUp(br *bufio.Reader, uc *upstream.Conn) error {
	err := pump(br, uc.TCPConn)
	if !isTimeout(err) {
		uc.CloseWrite()
	}
	return err
}

// pump copies from src to dst until either fails or a deadline interrupts
// it; what was read from src and not written to dst stays in src's buffer.
func pump(src *bufio.Reader, dst net.Conn) error {
	for {
		if src.Buffered() == 0 {
			if _, err := src.Peek(1); err != nil {
				return err
			}
		}
		b, _ := src.Peek(src.Buffered())
		n, err := dst.Write(b)
		src.Discard(n)
		if err != nil {
			return err
		}
	}
}

// serveTunnel serves a tunnel passed by another process.
func (c *conn) serveTunnel(uc *upstream.Conn, addr string) {
	c.start()
	defer c.close()
	c.tunnel(uc, addr)
	uc.Close()
}
