package connpass

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"smoothserve/internal/sockconn"
)

// The receiving end: the messages read off the pair, and the items made
// of them with the descriptors they carried.

// Receive reads the connections passed over f until the sender closes its
// end, and calls fn for each, in order, from this goroutine. f is closed
// when it returns. A malformed message is skipped (its descriptors closed)
// and reported in the error returned at the end.
func Receive(f *os.File, fn func(Item)) error {
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("connpass: receiving end: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return fmt.Errorf("connpass: receiving end is a %T, not a Unix socket", nc)
	}
	defer uc.Close()
	// Tell the sender this receiver takes every kind (a failure here only
	// keeps tunnels and streams in the sending process).
	uc.SetWriteDeadline(time.Now().Add(helloWait))
	uc.Write(hello)
	uc.SetWriteDeadline(time.Time{})
	buf := make([]byte, joinedHeader+maxAddr+maxState+2*MaxBuffered+1)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	var bad []error
	for {
		n, oobn, flags, _, err := uc.ReadMsgUnix(buf, oob)
		if n <= 0 && oobn <= 0 {
			// EOF: the sender closed its end (or an error). A sender of an
			// earlier release never reads the hello, so its close resets
			// the pair: an end like any other.
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				bad = append(bad, err)
			}
			return errors.Join(bad...)
		}
		fds, perr := rights(oob[:oobn])
		it, ierr := item(buf[:n], flags, fds)
		if err = errors.Join(err, perr, ierr); err != nil {
			if it.Conn != nil {
				it.Conn.Close()
			}
			if it.Instance != nil {
				it.Instance.Close()
			}
			bad = append(bad, err)
			continue
		}
		fn(it)
	}
}

func rights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("connpass: control message: %w", err)
	}
	var fds []int
	for i := range msgs {
		got, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// item makes the Item of one message, which holds one descriptor (Client,
// Idle) or two (Tunnel, Stream: the client's, then the instance's). It owns
// fds: those it does not make into the Item's connections it closes.
func item(msg []byte, flags int, fds []int) (Item, error) {
	fail := func(err error) (Item, error) {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return Item{}, err
	}
	switch {
	case flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0:
		return fail(errors.New("connpass: message truncated"))
	case len(msg) > 0 && Kind(msg[0]) == Counters && len(fds) == 0:
		return Item{Kind: Counters, State: clone(msg[1:])}, nil
	case len(fds) == 0:
		return fail(errors.New("connpass: message with 0 descriptors"))
	case len(msg) == 0:
		return fail(errors.New("connpass: empty message"))
	}
	it := Item{Kind: Kind(msg[0])}
	want := 1
	var err error
	switch it.Kind {
	case Client:
		if len(msg) < clientHeader {
			return fail(fmt.Errorf("connpass: message of %d bytes is too short", len(msg)))
		}
		it.Port = int(binary.BigEndian.Uint16(msg[1:]))
		if rest := msg[clientHeader:]; len(rest) > 0 {
			it.Buffered = append([]byte(nil), rest...)
		}
	case Idle:
		if it.Addr = string(msg[1:]); it.Addr == "" {
			return fail(errors.New("connpass: idle connection without an address"))
		}
	case Tunnel, Stream:
		want = 2
		err = it.readJoined(msg)
	default:
		return fail(fmt.Errorf("connpass: unknown kind %q", it.Kind))
	}
	switch {
	case err != nil:
		return fail(err)
	case len(fds) != want:
		return fail(fmt.Errorf("connpass: %c message with %d descriptors, want %d", it.Kind, len(fds), want))
	case it.Kind != Idle && it.Port == 0:
		return fail(errors.New("connpass: message for port 0"))
	}
	conns := make([]net.Conn, 0, want)
	for i, fd := range fds {
		conn, err := sockconn.New(fd)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			for _, rest := range fds[i+1:] { // not made into connections yet
				syscall.Close(rest)
			}
			return Item{}, fmt.Errorf("connpass: passed connection (%c): %w", it.Kind, err)
		}
		conns = append(conns, conn)
	}
	it.Conn = conns[0]
	if want == 2 {
		it.Instance = conns[1]
	}
	return it, nil
}

// readJoined reads the body of a Tunnel or Stream message (see SendJoined).
func (it *Item) readJoined(msg []byte) error {
	short := fmt.Errorf("connpass: %c message of %d bytes is too short", it.Kind, len(msg))
	if len(msg) < joinedHeader {
		return short
	}
	it.Port = int(binary.BigEndian.Uint16(msg[1:]))
	rest := msg[3:]
	n := int(rest[0])
	if len(rest) < 1+n+2 || n == 0 {
		return short
	}
	it.Addr, rest = string(rest[1:1+n]), rest[1+n:]
	n = int(binary.BigEndian.Uint16(rest))
	if len(rest) < 2+n+4 {
		return short
	}
	it.State, rest = clone(rest[2:2+n]), rest[2+n:]
	n64 := int64(binary.BigEndian.Uint32(rest))
	if int64(len(rest)-4) < n64 {
		return short
	}
	n = int(n64)
	it.Buffered, it.InstanceBuffered = clone(rest[4:4+n]), clone(rest[4+n:])
	return nil
}

// clone copies b out of the receive buffer; nil when empty.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
