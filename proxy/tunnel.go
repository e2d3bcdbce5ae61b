package proxy

import (
	"bufio"
	"io"
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
//
// A quiet tunnel holds no buffer: each direction, its reader empty, waits
// for its socket to become readable with the reader given back to its pool
// (one recv(MSG_PEEK) more per read: a tunnel reads little at a time, or
// 8–16 KiB at a time), and the client's 16 KiB writer, which a tunnel does
// not use, is swapped for a small one as it begins. What stays is two
// goroutines and the two connections.

// tunnelWriterSize is the client writer's size during a tunnel: nothing is
// written through it, but it is flushed and counted as any other.
const tunnelWriterSize = 16

// tunnel relays between the client and the instance at addr over uc until
// either side ends, or the tunnel is passed to another process.
func (c *conn) tunnel(uc *upstream.Conn, addr string) {
	c.nc.SetDeadline(time.Time{}) // the connection ends with the tunnel
	c.srv.enterTunnel(c, uc)
	if c.passing() {
		c.interrupt() // PassConnections began before the tunnel was listed
	}
	c.shrinkWriter()
	client, instance := c.tunnelEnd(), instanceEnd{uc}
	up := make(chan error, 1)
	upOpen := true // the client has not ended its side
	for {
		if upOpen {
			go func() { up <- pumpUp(client, uc) }()
		}
		err := pump(instance, c.sink.w) // rawio's Conn, or TLS's (rawio's below)
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

// shrinkWriter swaps the client's writer, flushed (the 101 was), for a
// small one for the tunnel; close does not pool it.
func (c *conn) shrinkWriter() {
	if c.bw.Buffered() > 0 || c.bw.Size() == tunnelWriterSize {
		return
	}
	c.putWriter()
	c.bw = bufio.NewWriterSize(&c.sink, tunnelWriterSize)
}

// A tunnelSource is what one direction of a tunnel reads from.
type tunnelSource interface {
	// reader is the source's reader; it may change across waitReadable.
	reader() *bufio.Reader
	// waitReadable waits, with the reader empty, until there are bytes to
	// read (or an end, or the read deadline), without holding a buffer
	// while it waits.
	waitReadable() error
}

// clientEnd is the client's side of a tunnel.
type clientEnd struct{ c *conn }

func (c *conn) tunnelEnd() *clientEnd { return &clientEnd{c: c} }

func (e *clientEnd) reader() *bufio.Reader { return e.c.br }

// waitReadable is readFirst: a plain connection waits without its reader,
// as one waiting for its next request does.
func (e *clientEnd) waitReadable() error { return e.c.readFirst() }

// instanceEnd is the instance's side of a tunnel.
type instanceEnd struct{ uc *upstream.Conn }

func (e instanceEnd) reader() *bufio.Reader { return e.uc.R }
func (e instanceEnd) waitReadable() error   { return e.uc.WaitReadable() }

// pumpUp copies from the client to the instance until the client ends its
// side, which is then ended towards the instance, or an interruption.
func pumpUp(client tunnelSource, uc *upstream.Conn) error {
	err := pump(client, uc) // its Write: rawio's
	if !isTimeout(err) {
		uc.CloseWrite()
	}
	return err
}

// pump copies from src to dst until either fails or a deadline interrupts
// it; what was read from src and not written to dst stays in src's buffer.
func pump(src tunnelSource, dst io.Writer) error {
	for {
		if src.reader().Buffered() == 0 {
			if err := src.waitReadable(); err != nil {
				return err
			}
			if _, err := src.reader().Peek(1); err != nil {
				return err
			}
		}
		r := src.reader()
		b, _ := r.Peek(r.Buffered())
		n, err := dst.Write(b)
		r.Discard(n)
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
