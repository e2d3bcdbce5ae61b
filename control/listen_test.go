package control

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/control/client"
)

func socketPath(t *testing.T) string {
	t.Helper()
	// t.TempDir can be longer than a socket path may be (107 bytes).
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "smoothserve.sock")
}

func mustListen(t *testing.T, path string) net.Listener {
	t.Helper()
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(%s): %v", path, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// staleSocket leaves a socket at path that nobody listens on, as a daemon
// killed with SIGKILL does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

func TestListenSocketIsOwnerOnly(t *testing.T) {
	// Even with a umask that would make it world-writable.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := socketPath(t)
	mustListen(t, path)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Type() != fs.ModeSocket || info.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600 (Srw-------)", info.Mode())
	}
	// The umask is the process's again.
	if got := syscall.Umask(0); got != 0 {
		t.Errorf("umask after Listen = %#o, want the caller's 0", got)
	}
}

func TestListenRefusesALiveSocket(t *testing.T) {
	path := socketPath(t)
	mustListen(t, path)
	_, err := Listen(path)
	want := "another smoothserve is running: control socket " + path + " answers"
	if err == nil || err.Error() != want {
		t.Fatalf("second Listen: %v, want %q", err, want)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the running daemon's socket is gone after a refused Listen: %v", err)
	}
}

func TestListenReplacesAStaleSocket(t *testing.T) {
	path := socketPath(t)
	staleSocket(t, path)
	ln := mustListen(t, path)
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		t.Fatalf("connecting to the replaced socket: %v", err)
	}
	c.Close()
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
}

func TestListenRefusesWhatIsNotASocket(t *testing.T) {
	tests := []struct {
		name string
		make func(path string) error
		want string
	}{
		{"regular file", func(p string) error { return os.WriteFile(p, []byte("x"), 0o600) }, "(a regular file)"},
		{"folder", func(p string) error { return os.Mkdir(p, 0o700) }, "(a folder)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := socketPath(t)
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			_, err := Listen(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "is not a socket "+tt.want) {
				t.Fatalf("Listen on a %s: %v, want an error naming %s as not a socket %s", tt.name, err, path, tt.want)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Errorf("Listen removed the %s: %v", tt.name, err)
			}
		})
	}
}

func TestCloseLeavesASuccessorsSocket(t *testing.T) {
	path := socketPath(t)
	first := mustListen(t, path)
	// An operator removed the socket and a second daemon took the path.
	os.Remove(path)
	second := mustListen(t, path)
	first.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("closing the first listener removed the second's socket: %v", err)
	}
	second.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after its own listener closed: %v", err)
	}
}

func TestClientNotRunning(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string // %s is the socket path
	}{
		{"no socket", func(*testing.T, string) {}, "smoothserve is not running: no control socket at %s"},
		{"stale socket", staleSocket, "smoothserve is not running: control socket %s refuses connections"},
		{"a regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("a binary built to the wrong path"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "smoothserve is not running: control socket %s: the path exists and is not a socket (a regular file)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := socketPath(t)
			tt.setup(t, path)
			_, err := client.Dial(path).Status(context.Background())
			if !errors.Is(err, client.ErrNotRunning) {
				t.Fatalf("Status: %v, want client.ErrNotRunning", err)
			}
			if want := strings.ReplaceAll(tt.want, "%s", path); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Status: %q, want it to start with %q", err, want)
			}
		})
	}
}
