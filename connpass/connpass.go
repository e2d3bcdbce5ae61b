package connpass

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"smoothserve/internal/sockpeek"
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
	// Tunnel is a client's connection joined to an instance's (a
	// WebSocket): both descriptors go, with the bytes read from either side
	// and not yet written to the other.
	Tunnel Kind = 't'
	// Stream is a client's connection in the middle of a response the
	// instance is still sending (server-sent events, a download): both
	// descriptors go, with where the response's body stands (State).
	Stream Kind = 's'
	// Counters is no connection: the sending process's counters, for the
	// receiving one to go on from (its metrics), in State.
	Counters Kind = 'm'
)

// A message is the kind, then for Client the port (big-endian) and the
// bytes read ahead, for Idle the instance's address.
const clientHeader = 3

// maxAddr bounds an instance's address (host:port).
const maxAddr = 255

// sendTimeout bounds one message's write, counted from when it is the
// next to go (sends wait their turn), as long as the receiver reads
// nothing: a blocked writer is woken only once about 3/4 of the socket's
// buffer (some 150 messages) has been read, so a write that times out
// while the receiver took some goes on waiting. A receiver that takes
// nothing for this long is stuck or gone, and every send after that fails
// at once.
var sendTimeout = 2 * time.Second

// maxState bounds a Stream's state.
const maxState = 1 << 10

// Item is one connection received.
type Item struct {
	Kind     Kind
	Port     int      // Client, Tunnel, Stream: the proxy port it was accepted on
	Buffered []byte   // Client, Tunnel, Stream: read from the client by the sender and not yet used
	Addr     string   // Idle, Tunnel, Stream: the address of the instance
	Conn     net.Conn // the client's (Idle: the instance's), a *sockconn.Conn

	// Tunnel, Stream: the connection to the instance, and the bytes read
	// from it by the sender and not yet used.
	Instance         net.Conn
	InstanceBuffered []byte
	State            []byte // Stream: where the response stands, as the proxy wrote it
}

// Joined is a client's connection joined to an instance's, for SendJoined.
type Joined struct {
	Kind             Kind // Tunnel or Stream
	Port             int
	Buffered         []byte // read from the client, not yet used
	Client           syscall.Conn
	Addr             string // the instance's address
	Instance         syscall.Conn
	InstanceBuffered []byte // read from the instance, not yet used
	State            []byte // Stream: where the response stands
}

// Sender is the passing side of a pair. Send may be called from several
// goroutines at once.
type Sender struct {
	uc *net.UnixConn

	// turn makes the sends one at a time, each with its own write
	// deadline: thousands of connections passed at once wait their turn
	// rather than share one deadline. stuck, once set, fails every send
	// after it; whoever has the turn owns it.
	turn  turns
	stuck error
	// room is the most bytes queued for the receiver that a send not
	// SendWaiting's adds to: the socket buffer holds some 270 small
	// messages, and one whose client waits would wait behind all of them.
	room int

	helloOnce sync.Once
	joinable  bool // the receiver said it takes Tunnel and Stream
}

// hello is what a receiver that takes Tunnel and Stream says first. A
// receiver of an earlier release says nothing, and is sent neither: it
// would drop them (a rollback to it).
var hello = []byte("connpass 2: c i t s")

// helloWait bounds the wait for the receiver's hello; it was sent when the
// receiving process started, long before anything is passed.
const helloWait = 500 * time.Millisecond

// NewPair makes a socket pair: the Sender stays in this process, the file is
// for the process that receives (Receive).
func NewPair() (*Sender, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("connpass: socketpair: %w", err)
	}
	// The kernel calls a Unix socket writable once what the receiver has
	// left to read is at most a quarter of its send buffer.
	sndbuf, err := syscall.GetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	if err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("connpass: socketpair's send buffer: %w", err)
	}
	sf := os.NewFile(uintptr(fds[0]), "connpass-sender")
	nc, err := net.FileConn(sf)
	sf.Close()
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("connpass: sending end: %w", err)
	}
	return &Sender{uc: nc.(*net.UnixConn), room: sndbuf / 4}, os.NewFile(uintptr(fds[1]), "connpass-receiver"), nil
}

// Send passes a client's connection conn, accepted on port, with the bytes
// read ahead of its next request. On success the receiver owns the
// connection and the caller closes its own descriptor (which does not close
// the connection); on failure the caller still owns it.
func (s *Sender) Send(port int, buffered []byte, conn syscall.Conn) error {
	return s.sendClient(false, port, buffered, conn)
}

// SendWaiting is Send for a connection whose client has sent its next
// request (or part of it), and waits for the answer: it goes ahead of
// every send still waiting its turn that is not SendWaiting's.
func (s *Sender) SendWaiting(port int, buffered []byte, conn syscall.Conn) error {
	return s.sendClient(true, port, buffered, conn)
}

func (s *Sender) sendClient(first bool, port int, buffered []byte, conn syscall.Conn) error {
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
	if err := s.send(first, msg, conn); err != nil {
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
	if err := s.send(false, msg, conn); err != nil {
		return fmt.Errorf("connpass: passing a connection to %s: %w", addr, err)
	}
	return nil
}

// SendJoined passes a client's connection joined to an instance's (a
// tunnel, or a response being streamed), as Send does a client's.
//
// A receiver of an earlier release takes neither: then the error says so,
// and the connections stay the caller's.
func (s *Sender) SendJoined(j Joined) error {
	switch {
	case j.Kind != Tunnel && j.Kind != Stream:
		return fmt.Errorf("connpass: kind %q is not a joined connection", j.Kind)
	case j.Port <= 0 || j.Port > 65535:
		return fmt.Errorf("connpass: port %d is not a TCP port", j.Port)
	case j.Addr == "" || len(j.Addr) > maxAddr:
		return fmt.Errorf("connpass: instance address %q: empty or longer than %d bytes", j.Addr, maxAddr)
	case len(j.Buffered) > MaxBuffered || len(j.InstanceBuffered) > MaxBuffered:
		return fmt.Errorf("connpass: %d and %d bytes read ahead, more than %d", len(j.Buffered), len(j.InstanceBuffered), MaxBuffered)
	case len(j.State) > maxState:
		return fmt.Errorf("connpass: a state of %d bytes, more than %d", len(j.State), maxState)
	case !s.receiverJoins():
		return errors.New("connpass: the new smoothserve is of an earlier release, which cannot take tunnels or streams")
	}
	msg := make([]byte, 0, joinedHeader+len(j.Addr)+len(j.State)+len(j.Buffered)+len(j.InstanceBuffered))
	msg = append(msg, byte(j.Kind))
	msg = binary.BigEndian.AppendUint16(msg, uint16(j.Port))
	msg = append(msg, byte(len(j.Addr)))
	msg = append(msg, j.Addr...)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(j.State)))
	msg = append(msg, j.State...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(j.Buffered)))
	msg = append(msg, j.Buffered...)
	msg = append(msg, j.InstanceBuffered...)
	if err := s.send(false, msg, j.Client, j.Instance); err != nil {
		return fmt.Errorf("connpass: passing a %c connection of port %d to %s: %w", j.Kind, j.Port, j.Addr, err)
	}
	return nil
}

// receiverJoins reports whether the receiver said hello (see hello).
func (s *Sender) receiverJoins() bool {
	s.helloOnce.Do(func() {
		buf := make([]byte, 64)
		s.uc.SetReadDeadline(time.Now().Add(helloWait))
		n, _, _, _, err := s.uc.ReadMsgUnix(buf, nil)
		s.joinable = err == nil && bytes.Equal(buf[:n], hello)
	})
	return s.joinable
}

// SendCounters passes the sending process's counters (opaque here), for
// the receiver to go on from; a receiver of an earlier release is sent
// nothing.
func (s *Sender) SendCounters(b []byte) error {
	if len(b) > MaxBuffered {
		return fmt.Errorf("connpass: counters of %d bytes, more than %d", len(b), MaxBuffered)
	}
	if !s.receiverJoins() {
		return errors.New("connpass: the new smoothserve is of an earlier release, which cannot take counters")
	}
	s.turn.take(false)
	err := s.writeLocked(false, append([]byte{byte(Counters)}, b...), nil)
	s.turn.give()
	if err != nil {
		return fmt.Errorf("connpass: passing the counters: %w", err)
	}
	return nil
}

// writeLocked sends one message, the turn held: it waits while the receiver
// reads, sendTimeout at a time (see sendTimeout); a send not first waits
// first for the queue to fall to room.
func (s *Sender) writeLocked(first bool, msg, oob []byte) error {
	if s.stuck != nil {
		return s.stuck
	}
	// A write blocks only on a full buffer, so what is queued now is what
	// the receiver has to make fall.
	queued := s.queued()
	for {
		s.uc.SetWriteDeadline(time.Now().Add(sendTimeout))
		var err error
		if !first && queued > s.room {
			err = s.waitRoom()
		}
		if err == nil {
			_, _, err = s.uc.WriteMsgUnix(msg, oob, nil)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		// Only the receiver changes what is queued while the turn is held:
		// less than at the last timeout means it is reading.
		now := s.queued()
		if now < 0 || queued < 0 || now >= queued {
			s.stuck = fmt.Errorf("the receiver took no message for %v", sendTimeout)
			return s.stuck
		}
		queued = now
	}
}

// waitRoom waits until at most room bytes are queued for the receiver,
// or the write deadline: the kernel says the socket writable again (and
// the poller wakes) once the receiver has taken what is beyond a quarter
// of the buffer, which room is.
func (s *Sender) waitRoom() error {
	raw, err := s.uc.SyscallConn()
	if err != nil {
		return err
	}
	var qerr error
	err = raw.Write(func(fd uintptr) bool {
		n, err := sockpeek.UnsentFD(fd)
		qerr = err
		return err != nil || n <= s.room
	})
	if err == nil {
		err = qerr
	}
	return err
}

// queued is how many bytes sent the receiver has not read (SIOCOUTQ), or
// -1 if that cannot be known.
func (s *Sender) queued() int {
	raw, err := s.uc.SyscallConn()
	if err != nil {
		return -1
	}
	return sockpeek.Unsent(raw)
}

// joinedHeader is the fixed part of a Tunnel or Stream message: kind,
// port, address length, state length, client bytes' length.
const joinedHeader = 1 + 2 + 1 + 2 + 4

// send writes msg with the descriptors of conns when its turn comes
// (first: ahead of the others waiting). The turn is taken first, so that a
// connection waiting for it can be closed meanwhile (then it is not sent).
func (s *Sender) send(first bool, msg []byte, conns ...syscall.Conn) error {
	s.turn.take(first)
	defer s.turn.give()
	fds := make([]int, 0, len(conns))
	var sendErr error
	// Each descriptor is valid only inside its Control: nest them.
	var next func(i int) error
	next = func(i int) error {
		if i == len(conns) {
			sendErr = s.writeLocked(first, msg, syscall.UnixRights(fds...))
			return nil
		}
		raw, err := conns[i].SyscallConn()
		if err != nil {
			return err
		}
		var inner error
		if err := raw.Control(func(fd uintptr) {
			fds = append(fds, int(fd))
			inner = next(i + 1)
		}); err != nil {
			return err
		}
		return inner
	}
	if err := next(0); err != nil {
		return err
	}
	return sendErr
}

// Close ends the pair: Receive returns once it has read what was sent.
// The receiver's hello is read first, if it was not: a close with it
// unread would reset the pair, and the receiver take that for a failure.
func (s *Sender) Close() error {
	s.receiverJoins()
	return s.uc.Close()
}
