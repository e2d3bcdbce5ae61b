package nofile

import "net"

// Room frees descriptors when this process has none left, and reports
// whether there is room to try again (the daemon's is the proxy's: it
// closes idle connections). at says what ran out, err how.
type Room func(at string, err error) bool

// roomTries bounds how often Retry and an Accept try again: room made by
// one call may be taken by another before it tries.
const roomTries = 3

// Retry runs fn, and again while it fails for want of a descriptor, r
// made room, and it has not been tried roomTries times. A nil Room runs fn
// once.
func (r Room) Retry(at string, fn func() error) error {
	err := fn()
	for try := 1; try < roomTries && r != nil && Exhausted(err) && r(at, err); try++ {
		err = fn()
	}
	return err
}

// Listener is ln whose Accept, when it fails for want of a descriptor,
// asks r for room and accepts again (Retry): the connection waits in the
// listen queue otherwise, and its client with it, until a descriptor is
// freed by chance. A nil Room gives ln itself.
func (r Room) Listener(ln net.Listener, at string) net.Listener {
	if r == nil {
		return ln
	}
	return roomListener{ln, r, at}
}

type roomListener struct {
	net.Listener
	room Room
	at   string
}

func (l roomListener) Accept() (c net.Conn, err error) {
	err = l.room.Retry(l.at, func() (err error) {
		c, err = l.Listener.Accept()
		return err
	})
	return c, err
}
