package connpass

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"smoothserve/internal/sockconn"
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
		n, err := outq(fd)
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
	n := -1
	raw.Control(func(fd uintptr) {
		if v, err := outq(fd); err == nil {
			n = v
		}
	})
	return n
}

// outq is how many bytes sent on fd its receiver has not read.
func outq(fd uintptr) (int, error) { return unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }

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
