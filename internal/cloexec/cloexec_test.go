package cloexec

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// A descriptor left without close-on-exec reaches a program run after it;
// after Mark it does not, and this process still uses it.
func TestMarkKeepsAnInheritedPipeFromPrograms(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fd := int(w.Fd())
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0); e != 0 {
		t.Fatal(e) // as inherited: no close-on-exec
	}
	reaches := func() bool {
		// The child fails its redirection if the descriptor is not there.
		return exec.Command("sh", "-c", "true >&"+strconv.Itoa(fd)).Run() == nil
	}
	if !reaches() {
		t.Fatalf("descriptor %d without close-on-exec did not reach the child", fd)
	}
	if _, err := Mark(); err != nil {
		t.Fatal(err)
	}
	if reaches() {
		t.Fatalf("descriptor %d reached the child after Mark", fd)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatalf("this process's use of it after Mark: %v", err)
	}
}
