package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"smoothserve/control/client"
)

// probeTimeout bounds the connect that tells a live socket from a stale one.
// A local connect answers at once; a daemon too busy to accept for this
// long is still alive, and its socket is reported as answering.
const probeTimeout = 2 * time.Second

// Listen creates the control socket at path, mode 0600, and listens on it.
//
// A socket already at path where a daemon answers is an error ("another
// smoothserve is running"); one that refuses connections was left by a
// daemon that died, and is replaced. Anything else at path is an error
// naming it. Closing the returned listener removes the socket if it is
// still the one created here.
//
// Listen sets the process's umask while it binds, so it must not run while
// other goroutines create files.
func Listen(path string) (net.Listener, error) {
	if err := clearStale(path); err != nil {
		return nil, err
	}
	// The socket file takes its mode from the umask at bind: set it so the
	// socket is never wider than 0600, not even until the chmod below.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, client.OpCause(err))
	}
	// net removes the path on Close whoever it belongs to by then; Close
	// below checks first.
	ln.SetUnlinkOnClose(false)
	l := &socketListener{UnixListener: ln, path: path}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	l.id = fileID(info)
	return l, nil
}

// clearStale makes way for a new socket at path: nothing there is fine, a
// socket nobody answers on is removed, anything else is an error.
func clearStale(path string) error {
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("control socket %s: %w", path, err)
	case info.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("control socket %s: the path exists and is not a socket (a %s); remove it or set ControlSocket",
			path, client.FileKind(info.Mode()))
	}
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("another smoothserve is running: control socket %s answers", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// EACCES above all: a socket we may not even probe is not ours
		// to remove.
		return fmt.Errorf("control socket %s: %w", path, client.OpCause(err))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale control socket: %w", err)
	}
	return nil
}

// socketListener removes its socket on Close, if the path still names it
// and it was not handed over (KeepSocket).
type socketListener struct {
	*net.UnixListener
	path string
	id   [2]uint64 // device and inode of the socket Listen created
	once sync.Once
}

// KeepSocket makes closing ln leave its socket file in place: the socket
// has been handed over to the next smoothserve, which listens on it now.
func KeepSocket(ln net.Listener) {
	if l, ok := ln.(*socketListener); ok {
		l.once.Do(func() {})
	}
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if info, serr := os.Lstat(l.path); serr == nil && fileID(info) == l.id {
			os.Remove(l.path)
		}
	})
	return err
}

func fileID(info fs.FileInfo) [2]uint64 {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]uint64{}
	}
	return [2]uint64{uint64(st.Dev), uint64(st.Ino)}
}
