package handoff

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const reviewENOMEMEnv = "HANDOFF_REVIEW_ENOMEM"

// A transient ENOMEM from poll(2) on the check that follows the pidfd's
// wake-up loses the exit for good: exited says false, and the watch waits
// in the (edge-triggered) poller for a readiness that already came. The
// zombie is never reaped here (an init that does not reap, as in a
// container), so no second wake-up comes. Before f2de9cd the watch slept
// 10 ms and polled again. Runs in a subprocess: the seccomp filter that
// injects the ENOMEM cannot be removed.
func TestRegressWatchMissesExitAfterTransientENOMEM(t *testing.T) {
	if os.Getenv(reviewENOMEMEnv) == "" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestReviewWatchMissesExitAfterTransientENOMEM$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), reviewENOMEMEnv+"=1", "GORACE=atexit_sleep_ms=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("subprocess: %v\n%s", err, out)
		}
		t.Logf("%s", out)
		return
	}

	sleeper := startSleeper(t, "")
	in := identify(t, sleeper.Process.Pid)
	var calls, fails, failNext atomic.Int32
	listener := installPpollNotifier(t)
	go answerPpoll(listener, &calls, &fails, &failNext)

	p := adopt(t, in)
	waitFor(t, "the watch's first check", 2*time.Second, func() bool { return calls.Load() >= 1 })
	time.Sleep(100 * time.Millisecond) // parked in the poller
	failNext.Store(1)
	// Killed, not reaped: a zombie, as under an init that does not reap.
	if err := syscall.Kill(sleeper.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(3 * time.Second):
		t.Errorf("pid %d exited 3 s ago (one ENOMEM injected: %d), Done still open: the exit is lost", p.Pid(), fails.Load())
	}
}

// installPpollNotifier routes every ppoll/poll of this process to a
// seccomp user-notification listener, which it returns.
func installPpollNotifier(t *testing.T) int {
	t.Helper()
	const (
		ldAbs  = 0x20 // BPF_LD|BPF_W|BPF_ABS
		jeqK   = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
		retK   = 0x06 // BPF_RET|BPF_K
		x86_64 = 0xc000003e
	)
	prog := []unix.SockFilter{
		{Code: ldAbs, K: 4},
		{Code: jeqK, Jt: 0, Jf: 3, K: x86_64},
		{Code: ldAbs, K: 0},
		{Code: jeqK, Jt: 2, Jf: 0, K: unix.SYS_PPOLL},
		{Code: jeqK, Jt: 1, Jf: 0, K: unix.SYS_POLL},
		{Code: retK, K: unix.SECCOMP_RET_ALLOW},
		{Code: retK, K: unix.SECCOMP_RET_USER_NOTIF},
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("filter written for amd64")
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	flags := unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		t.Skipf("seccomp user notification: %v", errno)
	}
	return int(fd)
}

// answerPpoll lets every notified call through, except that while
// failNext > 0 a ppoll fails with ENOMEM.
func answerPpoll(listener int, calls, fails, failNext *atomic.Int32) {
	runtime.LockOSThread()
	for {
		var req [80]byte
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req[0])))
		if errno != 0 {
			if errors.Is(errno, unix.EINTR) || errors.Is(errno, unix.ENOENT) {
				continue
			}
			return
		}
		calls.Add(1)
		var resp [24]byte
		copy(resp[0:8], req[0:8]) // id
		fail := failNext.Load() > 0
		if fail {
			errENOMEM := -int32(unix.ENOMEM)
			binary.NativeEndian.PutUint32(resp[16:20], uint32(errENOMEM))
		} else {
			binary.NativeEndian.PutUint32(resp[20:24], unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE)
		}
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp[0])))
		if errno == 0 && fail {
			failNext.Add(-1)
			fails.Add(1)
		}
	}
}
