package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"smoothserve/internal/priority"

	"github.com/cloudflare/tableflip"
	"github.com/coreos/go-systemd/v22/daemon"
)

// ErrBusy is returned by Upgrade while another upgrade is under way.
var ErrBusy = errors.New("an upgrade is already under way")

// ErrTookOver is wrapped by an error of Upgrade that comes after the new
// process took over: this one is to drain and exit all the same.
var ErrTookOver = errors.New("the new smoothserve took over")

// ErrReplaced is returned by Upgrade once this process has been replaced.
var ErrReplaced = errors.New("this smoothserve has been replaced already and is exiting; ask the new one")

// Upgrader is this process's side of upgrades: the listeners it inherited
// or opened, its readiness, and the upgrades it starts.
//
// Ownership: busy, replaced and gcPercent are guarded by mu; the rest is
// tableflip's.
type Upgrader struct {
	upg     *tableflip.Upgrader
	pidFile string

	mu        sync.Mutex
	busy      bool
	replaced  bool // an upgrade succeeded (tableflip's Exit closes a moment later)
	gcPercent int  // to restore at RestoreGCAfterSettling; -2: nothing to restore
}

// New sets up upgrades for this process. pidFile is written when the
// process is ready; a new process that is not ready within timeout is
// killed and the upgrade fails.
func New(pidFile string, timeout time.Duration) (*Upgrader, error) {
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: timeout, PIDFile: pidFile})
	if err != nil {
		return nil, fmt.Errorf("setting up upgrades: %w", err)
	}
	u := &Upgrader{upg: upg, pidFile: pidFile, gcPercent: -2}
	if upg.HasParent() {
		startBelow()
		u.gcPercent = debug.SetGCPercent(takeOverGCPercent)
	}
	return u, nil
}

// takeOverGCPercent is the GOGC of a new process until a while after the
// previous one has exited (RestoreGCAfterSettling). A fresh Go heap's
// first goal is 4 MB × GOGC/100, which the buffers of the connections a new smoothserve takes
// over nearly fill: at the default 100 it collected for the first time as
// it took over, with every client of those connections waiting for it, and
// again in every process of a run of upgrades. The heap of a serving
// smoothserve is a few MB: a 16 MB goal for a few seconds costs nothing.
const takeOverGCPercent = 400

// settleTime is how long after the previous process's exit the garbage
// collector goes back to its setting.
const settleTime = 5 * time.Second

// RestoreGCAfterSettling is called once the previous process has exited:
// settleTime later, the garbage collector goes back to its setting (GOGC).
func (u *Upgrader) RestoreGCAfterSettling() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.gcPercent == -2 {
		return
	}
	percent := u.gcPercent
	u.gcPercent = -2
	time.AfterFunc(settleTime, func() { debug.SetGCPercent(percent) })
}

// startBelow puts this process in the idle class (priority.Idle) until it
// is ready, if it may raise its priority back then (root, CAP_SYS_NICE or
// RLIMIT_NICE); otherwise it starts at its given priority. Its start
// (runtime, configuration, adopting the instances) runs on CPU that the
// requests the old process is serving leave: on a machine with a core to
// spare that changes nothing; on a busy one the upgrade takes longer and
// the requests do not pay for it (at nice +10 instead, a back-to-back
// upgrade loop ran about 40% more upgrades and took about 9 points more of
// the throughput; bench/NOTES.md). A machine that is never idle still
// gives it a sliver: the start takes seconds there, within UpgradeTimeout.
// Instances it starts meanwhile get the given priority (priority.Start).
func startBelow() {
	if priority.CanRaise() {
		priority.Idle()
	}
}

// RestorePriority gives this process back the priority it was started with;
// call it before it takes over from the previous one: before it accepts,
// and before Ready.
func (u *Upgrader) RestorePriority() error {
	if err := priority.Restore(); err != nil {
		return fmt.Errorf("restoring the priority after starting below it: %w", err)
	}
	return nil
}

// LowerToIdleClass puts this process in the idle class for the rest of its
// life: it has handed over, and what is left (letting go, exiting) can
// wait for the new process's requests.
func (u *Upgrader) LowerToIdleClass() { priority.Idle() }

// HasParent reports whether this process was started by an upgrade.
func (u *Upgrader) HasParent() bool { return u.upg.HasParent() }

// ListenTCP returns the listener on addr inherited from the previous
// process, or a new one.
func (u *Upgrader) ListenTCP(addr string) (net.Listener, error) {
	ln, err := u.upg.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln, nil
}

// ListenUnix returns the Unix socket listener at path inherited from the
// previous process, or the one listen makes.
func (u *Upgrader) ListenUnix(path string, listen func(path string) (net.Listener, error)) (net.Listener, error) {
	return u.upg.ListenWithCallback("unix", path, func(_, addr string) (net.Listener, error) {
		return listen(addr)
	})
}

// PassFile gives the processes that upgrades start from now on a copy of f
// under name (until another file replaces it). f stays the caller's to
// close.
func (u *Upgrader) PassFile(name string, f *os.File) error {
	if err := u.upg.Fds.AddFile(name, f); err != nil {
		return fmt.Errorf("passing %s to the new process: %w", name, err)
	}
	return nil
}

// PassBytes gives the processes that upgrades start from now on b under
// name (until other bytes or a file replace it), through a pipe: at most
// a pipe's buffer, 4 KiB everywhere.
func (u *Upgrader) PassBytes(name string, b []byte) error {
	if len(b) > 4096 {
		return fmt.Errorf("passing %s to the new process: %d bytes, more than a pipe holds", name, len(b))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("passing %s to the new process: %w", name, err)
	}
	defer r.Close()
	_, err = w.Write(b)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("passing %s to the new process: %w", name, err)
	}
	return u.PassFile(name, r)
}

// InheritedBytes returns what the previous process passed under name with
// PassBytes (at most max bytes of it), or nil if it passed nothing. Call
// it before Ready, as InheritedFile.
func (u *Upgrader) InheritedBytes(name string, max int64) ([]byte, error) {
	f, err := u.InheritedFile(name)
	if err != nil || f == nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil, fmt.Errorf("reading %s from the previous process: %w", name, err)
	}
	return b, nil
}

// InheritedFile returns the file the previous process passed under name,
// or nil if it passed none. Call it before Ready: files not taken by then
// are closed.
func (u *Upgrader) InheritedFile(name string) (*os.File, error) {
	f, err := u.upg.Fds.File(name)
	if err != nil {
		return nil, fmt.Errorf("the file %s from the previous process: %w", name, err)
	}
	return f, nil
}

// Ready says this process serves: the pid file names it, the previous
// process (if any) is told to drain and exit, and systemd (if it started
// us) learns the new main pid.
func (u *Upgrader) Ready() error {
	// systemd must know the new main pid before the old process exits
	// (it exits once told we are ready): otherwise the old one's exit is
	// the service's, and its processes are killed.
	notify(fmt.Sprintf("MAINPID=%d", os.Getpid()))
	if err := u.upg.Ready(); err != nil {
		return err
	}
	notify(daemon.SdNotifyReady)
	return nil
}

// NotifySystemdStopping tells systemd this process is stopping for good.
func (u *Upgrader) NotifySystemdStopping() { notify(daemon.SdNotifyStopping) }

// notify sends a state to systemd; without NOTIFY_SOCKET it does nothing.
// The environment is kept: a process started by an upgrade needs it too.
func notify(state string) { daemon.SdNotify(false, state) }

// WaitForParent waits until the process this one replaced has exited.
func (u *Upgrader) WaitForParent(ctx context.Context) error {
	return u.upg.WaitForParent(ctx)
}

// Exit is closed once an upgrade succeeded: this process should drain and
// exit.
func (u *Upgrader) Exit() <-chan struct{} { return u.upg.Exit() }

// Stop ends upgrades for good (smoothserve is stopping, not being
// replaced), and removes the control socket.
func (u *Upgrader) Stop() { u.upg.Stop() }

// Upgrade starts the binary again and waits until the new process is
// ready, or has failed (exited, or not ready within the timeout). prepare
// runs first (the supervisor hands over its state, the files to pass are
// added); abort runs if the upgrade fails after prepare succeeded. It
// returns the new process's pid. One upgrade runs at a time (ErrBusy), and
// none once this process has been replaced (ErrReplaced).
func (u *Upgrader) Upgrade(prepare func() error, abort func()) (int, error) {
	u.mu.Lock()
	switch {
	case u.replaced:
		u.mu.Unlock()
		return 0, ErrReplaced
	case u.busy:
		u.mu.Unlock()
		return 0, ErrBusy
	}
	u.busy = true
	u.mu.Unlock()
	succeeded := false
	defer func() {
		u.mu.Lock()
		u.busy = false
		u.replaced = u.replaced || succeeded
		u.mu.Unlock()
	}()
	select {
	case <-u.upg.Exit():
		return 0, ErrReplaced
	default:
	}
	parentGone := u.waitForParent()
	for try := 0; ; try++ {
		if err := prepare(); err != nil {
			return 0, err
		}
		err := u.upg.Upgrade()
		if err == nil {
			succeeded = true
			break
		}
		abort()
		// tableflip's loop may not have seen the parent's exit that
		// WaitForParent reported a moment ago: it is on its way.
		if parentGone && isParentNotExited(err) && try < 50 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return 0, fmt.Errorf("the new smoothserve did not take over: %w", explain(err))
	}
	pid, err := readPid(u.pidFile)
	if err != nil {
		return 0, fmt.Errorf("%w, but %w", ErrTookOver, err)
	}
	return pid, nil
}

// Successor is the pid of the process that replaced this one, as the pid
// file names it.
func (u *Upgrader) Successor() (int, error) { return readPid(u.pidFile) }

// parentWait is how long an upgrade waits for the process this one
// replaced to exit.
const parentWait = 3 * time.Second

// waitForParent waits, at most parentWait, for the process this one
// replaced to exit: an upgrade asked in its last moments (it has handed
// over and is exiting: a second upgrade right after one) goes ahead then,
// where tableflip would refuse it. One whose previous process is still
// serving its TLS connections (UpgradeDrainTimeout) is refused after the
// wait, as before, saying so (explain).
func (u *Upgrader) waitForParent() (gone bool) {
	ctx, cancel := context.WithTimeout(context.Background(), parentWait)
	defer cancel()
	return u.upg.WaitForParent(ctx) == nil
}

// isParentNotExited reports whether err is tableflip's refusal while the
// process this one replaced has not exited (explain).
func isParentNotExited(err error) bool { return err.Error() == "parent hasn't exited" }

// explain rewords tableflip's errors for an operator.
func explain(err error) error {
	switch msg := err.Error(); {
	case isParentNotExited(err):
		return errors.New("this smoothserve is itself still replacing the previous one, which serves its last connections (up to UpgradeDrainTimeout); try again once it has exited")
	case strings.Contains(msg, "timed out"):
		return fmt.Errorf("%w (not ready within UpgradeTimeout; it was killed)", err)
	}
	return err
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading its pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %q is not a pid", path, b)
	}
	return pid, nil
}
