package h2raw

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// Frame types and flags (RFC 9113 §6).
const (
	TypeData         = 0x0
	TypeHeaders      = 0x1
	TypeRSTStream    = 0x3
	TypeSettings     = 0x4
	TypeGoAway       = 0x7
	TypeContinuation = 0x9

	FlagEndStream  = 0x1
	FlagAck        = 0x1
	FlagEndHeaders = 0x4
	FlagPadded     = 0x8
	FlagPriority   = 0x20
)

// Preface is what a client sends first: the connection preface and an
// empty SETTINGS frame (a new slice each call).
func Preface() []byte {
	return append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Encode(TypeSettings, 0, 0, nil)...)
}

// Encode is a frame.
func Encode(typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	h := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}
	return append(h, payload...)
}

// Frame is a frame as read.
type Frame struct {
	Type, Flags byte
	Stream      uint32
	Payload     []byte
}

// Read reads a frame.
func Read(r io.Reader) (Frame, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Type: h[3], Flags: h[4], Stream: uint32(h[5]&0x7f)<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])}
	f.Payload = make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
	_, err := io.ReadFull(r, f.Payload)
	return f, err
}

// Fragment is a HEADERS frame's header block fragment: its payload
// without padding and priority; nil if they do not fit.
func (f Frame) Fragment() []byte {
	b := f.Payload
	pad := 0
	if f.Flags&FlagPadded != 0 {
		if len(b) == 0 {
			return nil
		}
		pad, b = int(b[0]), b[1:]
	}
	if f.Flags&FlagPriority != 0 {
		if len(b) < 5 {
			return nil
		}
		b = b[5:]
	}
	if pad > len(b) {
		return nil
	}
	return b[:len(b)-pad]
}

// GetBlock is GET https://authority/ in HPACK: :method GET, :scheme
// https, :path / (indexed from the static table), :authority (a literal
// without indexing, its name from the static table).
func GetBlock(authority string) []byte {
	return appendString([]byte{0x82, 0x87, 0x84, 0x01}, authority)
}

// Open sends the preface on c, a TLS connection whose handshake chose h2,
// and GETs / for authority on stream 1 (Get); the caller sets c's
// deadline.
func Open(c net.Conn, authority string) error {
	if tc, ok := c.(*tls.Conn); ok {
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			return fmt.Errorf("the TLS handshake chose %q, not h2", p)
		}
	}
	if _, err := c.Write(Preface()); err != nil {
		return fmt.Errorf("writing the preface: %w", err)
	}
	return Get(c, 1, authority)
}

// Get sends GET / for authority on stream id of c, whose preface was sent,
// and reads frames until its answer, which must be a 200 (after any 1xx),
// has ended, and for stream 1 until both sides' SETTINGS are acknowledged:
// nothing is left for the server to send but what an idle connection
// gets. A GOAWAY that names id or a later stream is waited past (the
// answer comes); one that names an earlier stream is ErrRefused. It sends
// no WINDOW_UPDATE: an answer of more than 64 KiB stalls.
// It sets no deadline: the caller's bounds it.
func Get(c net.Conn, id uint32, authority string) error {
	_, err := GetTold(c, id, authority)
	return err
}

// GetTold is Get, and reports whether a GOAWAY came before the answer's
// end (one that named id or a later stream).
func GetTold(c net.Conn, id uint32, authority string) (told bool, err error) {
	if _, err := c.Write(Encode(TypeHeaders, FlagEndStream|FlagEndHeaders, id, GetBlock(authority))); err != nil {
		return false, fmt.Errorf("stream %d: writing HEADERS: %w", id, err)
	}
	settled := id > 1  // the SETTINGS of either side are the first exchange's
	var block []byte   // the header block being read, until END_HEADERS
	blockEnds := false // its HEADERS frame had END_STREAM
	headed, ended := false, false
	for !ended || !settled {
		f, err := Read(c)
		if err != nil {
			return told, fmt.Errorf("stream %d: reading: %w", id, err)
		}
		switch {
		case f.Type == TypeSettings && f.Flags&FlagAck == 0:
			if _, err := c.Write(Encode(TypeSettings, FlagAck, 0, nil)); err != nil {
				return told, fmt.Errorf("stream %d: writing a SETTINGS ACK: %w", id, err)
			}
		case f.Type == TypeSettings:
			settled = true
		case f.Type == TypeGoAway:
			// The server stops taking streams; those up to the last it
			// names are answered (RFC 9113 §6.8), later ones are not and a
			// client may send them again elsewhere.
			if len(f.Payload) < 8 {
				return told, fmt.Errorf("stream %d: GOAWAY of %d bytes, want 8 or more", id, len(f.Payload))
			}
			last := binary.BigEndian.Uint32(f.Payload) & 0x7fffffff
			if last < id {
				return told, fmt.Errorf("stream %d: %w: GOAWAY, last stream %d, code %#x", id, ErrRefused, last, binary.BigEndian.Uint32(f.Payload[4:]))
			}
			settled, told = true, true // the connection is closing: no idle state to wait for
		case f.Stream != id:
		case f.Type == TypeRSTStream:
			return told, fmt.Errorf("stream %d: RST_STREAM %x", id, f.Payload)
		case f.Type == TypeHeaders || f.Type == TypeContinuation:
			if f.Type == TypeHeaders {
				block, blockEnds = f.Fragment(), f.Flags&FlagEndStream != 0
			} else {
				block = append(block, f.Payload...)
			}
			if f.Flags&FlagEndHeaders == 0 {
				continue
			}
			if !headed { // the answer's head, or a 1xx before it; a later block is trailers
				switch st := Status(block); {
				case st >= 100 && st < 200:
					continue
				case st != 200:
					return told, fmt.Errorf("stream %d: answered %d (%x), not 200", id, st, block)
				}
				headed = true
			}
			ended = blockEnds
		case f.Type == TypeData:
			ended = f.Flags&FlagEndStream != 0
		}
	}
	return told, nil
}

// ErrRefused says the server did not process the stream: a GOAWAY named
// an earlier last stream (RFC 9113 §8.7).
var ErrRefused = errors.New("not processed")

// ErrIndexed is what NotIndexed finds.
var ErrIndexed = errors.New("a literal with incremental indexing")

// NotIndexed walks a header block and says ErrIndexed at a literal with
// incremental indexing: a field the sender adds to its dynamic table, if
// it keeps one (after a table size update to 0 it adds nothing).
func NotIndexed(b []byte) error {
	for len(b) > 0 {
		first := b[0]
		switch {
		case first&0x80 != 0: // indexed
			_, b = integer(b, 7)
		case first&0xc0 == 0x40:
			return fmt.Errorf("%w: %x", ErrIndexed, b)
		case first&0xe0 == 0x20: // dynamic table size update
			_, b = integer(b, 5)
		default: // literal without indexing, or never indexed
			var idx int
			idx, b = integer(b, 4)
			if idx == 0 && b != nil {
				_, b = str(b)
			}
			if b != nil {
				_, b = str(b)
			}
		}
		if b == nil {
			return errors.New("a header block cut short")
		}
	}
	return nil
}
