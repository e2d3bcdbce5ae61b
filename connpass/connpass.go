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
)

// MaxBuffered is the most bytes read ahead that may go with a connection.
const MaxBuffered = 64 << 10

// Kind says what a passed connection is.
type Kind byte

const (
	// Client is a client's connection, between two requests.
	Client Kind = 'c'
	// Idle is an idle connection to an instance.
	Idle Kind = 'i'
)

// A message is the kind, then for Client the port (big-endian) and the
// bytes read ahead, for Idle the instance's address.
const clientHeader = 3

// maxAddr bounds an instance's address (host:port).
const maxAddr = 255

// sendTimeout bounds one Send: the receiver reads as fast as it can, so a
// full socket buffer that does not drain means it is stuck or gone.
const sendTimeout = 2 * time.Second

// Item is one connection received.
type Item struct {
	Kind     Kind
	Port     int      // Client: the proxy port it was accepted on
	Buffered []byte   // Client: read by the sender and not yet used, the connection's first bytes
	Addr     string   // Idle: the address of the instance it connects to
	Conn     net.Conn // *net.TCPConn
}

// Sender is the passing side of a pair. Send may be called from several
// goroutines at once.
type Sender struct {
	uc *net.UnixConn
}

// NewPair makes a socket pair: the Sender stays in this process, the file is
// for the process that receives (Receive).
func NewPair() (*Sender, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("connpass: socketpair: %w", err)
	}
	sf := os.NewFile(uintptr(fds[0]), "connpass-sender")
	nc, err := net.FileConn(sf)
	sf.Close()
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("connpass: sending end: %w", err)
	}
	return &Sender{uc: nc.(*net.UnixConn)}, os.NewFile(uintptr(fds[1]), "connpass-receiver"), nil
}

// Send passes a client's connection conn, accepted on port, with the bytes
// read ahead of its next request. On success the receiver owns the
// connection and the caller closes its own descriptor (which does not close
// the connection); on failure the caller still owns it.
func (s *Sender) Send(port int, buffered []byte, conn syscall.Conn) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("connpass: port %d is not a TCP port", port)
	}
	if len(buffered) > MaxBuffered {
		return fmt.Errorf("connpass: %d bytes read ahead, more than %d", len(buffered), MaxBuffered)
	}
	msg := make([]byte, clientHeader, clientHeader+len(buffered))
	msg[0] = byte(Client)
	binary.BigEndian.PutUint16(msg[1:], uint16(port))
	msg = append(msg, buffered...)
	if err := s.send(msg, conn); err != nil {
		return fmt.Errorf("connpass: passing a connection of port %d: %w", port, err)
	}
	return nil
}

// SendIdle passes an idle connection to the instance at addr, as Send does
// a client's.
func (s *Sender) SendIdle(addr string, conn syscall.Conn) error {
	if addr == "" || len(addr) > maxAddr {
		return fmt.Errorf("connpass: instance address %q: empty or longer than %d bytes", addr, maxAddr)
	}
	msg := append([]byte{byte(Idle)}, addr...)
	if err := s.send(msg, conn); err != nil {
		return fmt.Errorf("connpass: passing a connection to %s: %w", addr, err)
	}
	return nil
}

func (s *Sender) send(msg []byte, conn syscall.Conn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	s.uc.SetWriteDeadline(time.Now().Add(sendTimeout))
	var sendErr error
	err = raw.Control(func(fd uintptr) {
		_, _, sendErr = s.uc.WriteMsgUnix(msg, syscall.UnixRights(int(fd)), nil)
	})
	if err == nil {
		err = sendErr
	}
	return err
}

// Close ends the pair: Receive returns once it has read what was sent.
func (s *Sender) Close() error { return s.uc.Close() }

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
	buf := make([]byte, clientHeader+MaxBuffered+1)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	var bad []error
	for {
		n, oobn, flags, _, err := uc.ReadMsgUnix(buf, oob)
		if n == 0 && oobn == 0 {
			// EOF: the sender closed its end (or an error).
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
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

// item makes the Item of one message, which holds exactly one descriptor.
// It owns fds: those it does not make into the Item's Conn it closes.
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
	case len(fds) != 1:
		return fail(fmt.Errorf("connpass: message with %d descriptors, want 1", len(fds)))
	case len(msg) == 0:
		return fail(errors.New("connpass: empty message"))
	}
	it := Item{Kind: Kind(msg[0])}
	switch it.Kind {
	case Client:
		if len(msg) < clientHeader {
			return fail(fmt.Errorf("connpass: message of %d bytes is too short", len(msg)))
		}
		it.Port = int(binary.BigEndian.Uint16(msg[1:]))
		if it.Port == 0 {
			return fail(errors.New("connpass: message for port 0"))
		}
		if rest := msg[clientHeader:]; len(rest) > 0 {
			it.Buffered = append([]byte(nil), rest...)
		}
	case Idle:
		if it.Addr = string(msg[1:]); it.Addr == "" {
			return fail(errors.New("connpass: idle connection without an address"))
		}
	default:
		return fail(fmt.Errorf("connpass: unknown kind %q", it.Kind))
	}
	f := os.NewFile(uintptr(fds[0]), "passed-connection")
	conn, err := net.FileConn(f)
	f.Close() // FileConn made its own descriptor
	if err != nil {
		return Item{}, fmt.Errorf("connpass: passed connection (%c): %w", it.Kind, err)
	}
	it.Conn = conn
	return it, nil
}
