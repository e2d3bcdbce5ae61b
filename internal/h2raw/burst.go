package h2raw

import (
	"encoding/binary"
	"errors"
	"net"
)

const (
	typePing          = 0x6
	typeWindowUpdate  = 0x8
	codeRefusedStream = 0x7
)

var errShortGoAway = errors.New("h2raw: a GOAWAY of less than 8 bytes")

// Burst is what a Burst saw, stream by stream.
type Burst struct {
	Answered int // a 200 whose end came
	NotOK    int // another final status
	Refused  int // not processed: beyond a GOAWAY's last stream, or RST_STREAM REFUSED_STREAM (RFC 9113 §8.7)
	Lost     int // reset otherwise, or left open when the connection ended
	// GoAways is the last stream each GOAWAY named, in order.
	GoAways []uint32
	// Err is why the connection ended, if it ended before the streams did.
	Err error
}

// RunBurst sends the preface on c (a TLS connection whose handshake chose
// h2) and GETs / for authority, keeping m streams in flight, as a browser
// loading a page or h2load -m does, without sending any again, until stop
// is closed or a GOAWAY comes: from then on it opens none, and returns
// once each stream open is answered, refused or lost. It returns the
// WINDOW_UPDATEs a connection needs and acknowledges SETTINGS and PINGs;
// the caller's deadline on c bounds it.
func RunBurst(c net.Conn, authority string, m int, stop <-chan struct{}) Burst {
	var b Burst
	if _, b.Err = c.Write(Preface()); b.Err != nil {
		return b
	}
	block := GetBlock(authority)
	open := make(map[uint32]bool)
	next, told := uint32(1), false
	for {
		select {
		case <-stop:
			told = true
		default:
		}
		for !told && len(open) < m {
			if _, b.Err = c.Write(Encode(TypeHeaders, FlagEndStream|FlagEndHeaders, next, block)); b.Err != nil {
				b.Lost += len(open)
				return b
			}
			open[next] = true
			next += 2
		}
		if told && len(open) == 0 {
			return b
		}
		f, err := Read(c)
		if err != nil {
			b.Err = err
			b.Lost += len(open)
			return b
		}
		if err := b.take(c, f, open); err != nil {
			b.Err = err
			b.Lost += len(open)
			return b
		}
		told = told || len(b.GoAways) > 0
	}
}

// take counts what frame f says of the streams open, and answers it if it
// asks.
func (b *Burst) take(c net.Conn, f Frame, open map[uint32]bool) error {
	var reply []byte
	switch f.Type {
	case TypeSettings:
		if f.Flags&FlagAck == 0 {
			reply = Encode(TypeSettings, FlagAck, 0, nil)
		}
	case typePing:
		if f.Flags&FlagAck == 0 {
			reply = Encode(typePing, FlagAck, 0, f.Payload)
		}
	case TypeGoAway:
		if len(f.Payload) < 8 {
			return errShortGoAway
		}
		last := binary.BigEndian.Uint32(f.Payload) & 0x7fffffff
		b.GoAways = append(b.GoAways, last)
		for id := range open {
			if id > last {
				delete(open, id)
				b.Refused++
			}
		}
	case TypeRSTStream:
		if open[f.Stream] {
			delete(open, f.Stream)
			if len(f.Payload) == 4 && binary.BigEndian.Uint32(f.Payload) == codeRefusedStream {
				b.Refused++
			} else {
				b.Lost++
			}
		}
	case TypeHeaders:
		if st := Status(f.Fragment()); open[f.Stream] && st >= 200 && st != 200 {
			delete(open, f.Stream)
			b.NotOK++
		} else if open[f.Stream] && f.Flags&FlagEndStream != 0 {
			delete(open, f.Stream)
			b.Answered++
		}
	case TypeData:
		if len(f.Payload) > 0 {
			var n [4]byte
			binary.BigEndian.PutUint32(n[:], uint32(len(f.Payload)))
			reply = append(Encode(typeWindowUpdate, 0, 0, n[:]), Encode(typeWindowUpdate, 0, f.Stream, n[:])...)
		}
		if open[f.Stream] && f.Flags&FlagEndStream != 0 {
			delete(open, f.Stream)
			b.Answered++
		}
	}
	if reply != nil {
		_, err := c.Write(reply)
		return err
	}
	return nil
}
