package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"smoothserve/connpass"
	"smoothserve/control/api"
	"smoothserve/supervisor"
	"smoothserve/upgrade"
)

// An upgrade, top to bottom (upgrade, then Run's release of the
// components):
//
//  1. freeze: the supervisor starts and stops nothing, and writes the
//     state file for the new process (prepare);
//  2. start the new process, which inherits the listeners, the control
//     socket, the receiving end of a connpass pair and this one's heap in
//     use;
//  3. wait until it is ready (it has adopted the instances, and made
//     resident as much heap as this one had in use): upg.Upgrade returns,
//     and upg.Exit is closed;
//  4. stop answering on the control socket, before smoothtool is told the
//     upgrade is done: every call from then on reaches the new daemon;
//  5. pass connections: Run first stops answering on the admin listener
//     and the agent port, which the new process answers too (a load
//     balancer's checks), and finishes the checks already taken, at full
//     priority (stopAnswering); then it releases the components in
//     reverse order, and the proxy's release finishes the requests in
//     progress and passes every client connection (and the idle ones to
//     the instances);
//  6. detach: the supervisor lets the instances go, still running;
//  7. exit: Run returns nil.
//
// If the new process fails before 3, abort thaws the supervisor and this
// process goes on serving. upgrade.ErrTookOver means 3 happened but the
// new pid could not be read: the upgrade succeeded, and this process exits.

// upgrade replaces this smoothserve with a new process of its binary
// (steps 1–4) and returns the new pid (0 if it could not be read).
func (d *Daemon) upgrade(ctx context.Context) (int, error) {
	if err := d.settled(ctx); err != nil {
		return 0, err
	}
	// Inside Upgrade's one-at-a-time: the pair goes with the process this
	// upgrade starts.
	var pass *connpass.Sender
	prepare := func() error {
		if err := d.sup.Freeze(); err != nil {
			return err
		}
		// The binary as it is now answers every SIGHUP so far.
		d.hupsServed.Store(d.hupsSeen.Load())
		d.log.Info("upgrading: starting the new smoothserve", "binary", os.Args[0])
		pass = d.newPass()
		d.passTickets()
		d.passHeapInUse()
		return nil
	}
	abort := func() {
		d.sup.Thaw()
		if pass != nil {
			d.pass.CompareAndSwap(pass, nil)
			pass.Close()
		}
	}
	pid, err := d.upg.Upgrade(prepare, abort)
	if errors.Is(err, upgrade.ErrTookOver) {
		// The new process is ready and has the listeners; only its pid
		// could not be read. Saying "goes on serving" would be false.
		d.log.Warn("upgrade: the new smoothserve took over", "err", err)
		pid, err = 0, nil
	}
	if err != nil {
		// Not counted: refused before anything was tried, each time a
		// SIGHUP's upgrade looks again (upgradeOnSignal).
		if !errors.Is(err, upgrade.ErrBusy) && !errors.Is(err, upgrade.ErrReplaced) && !errors.Is(err, supervisor.ErrRolloutUnderWay) {
			d.upgrades.failed.Add(1)
		}
		return 0, err
	}
	// The new process counts this upgrade (becomeReady): Run may pass
	// this one's counters to it before a count made here.
	d.ctl.stopAccepting()
	return pid, nil
}

// settled returns nil once this process is the ready daemon and the one
// it replaced (if any) has exited: until then that one may still send
// requests to any instance it knew, so what runs may not change.
func (d *Daemon) settled(ctx context.Context) error {
	select {
	case <-d.ready:
	default:
		return errors.New("smoothserve is still starting (or replacing the previous one); try again once it is ready")
	}
	pctx, cancel := context.WithTimeout(ctx, d.config().UpgradeDrainTimeout+5*time.Second)
	defer cancel()
	if err := d.upg.WaitForParent(pctx); err != nil {
		return fmt.Errorf("the previous smoothserve has not exited yet: %w", err)
	}
	return nil
}

// upgradeOnSignals makes the upgrades SIGHUP asks for, one at a time,
// until ctx ends (the process stops) or the process has handed over to
// the one that replaced it: a SIGHUP no upgrade answered then is passed
// on to that one. It closes done when it returns.
func (d *Daemon) upgradeOnSignals(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.hups:
			d.upgradeOnSignal(ctx)
		case <-d.handedOver:
			if !d.hupsAnswered() {
				d.passSIGHUPOn()
			}
			return
		}
	}
}

// hupsAnswered reports whether an upgrade started since the last SIGHUP
// came: it runs the binary that SIGHUP asked for.
func (d *Daemon) hupsAnswered() bool { return d.hupsServed.Load() >= d.hupsSeen.Load() }

// upgradeOnSignal is an upgrade asked by SIGHUP: only the log tells how
// it went, so none is refused for its timing, as one smoothtool asks is.
// One asked while this process starts (or takes over from the previous
// one) waits until it serves; one asked while a rollout runs waits for it
// to end. One asked while another upgrade runs waits for it; if that one
// replaced this process and started before the SIGHUP came, the signal
// is passed on to the new one (the binary may have changed since, and the
// pid the sender knew was this one's). Any upgrade that starts after a
// SIGHUP answers it: SIGHUPs that come while this one waits are this one.
func (d *Daemon) upgradeOnSignal(ctx context.Context) {
	select {
	case <-d.ready:
	case <-ctx.Done():
		return
	}
	waitingForRollout := false
	for !d.hupsAnswered() {
		if ctx.Err() != nil { // stopping
			return
		}
		if d.rolloutUnderWay() {
			if !waitingForRollout {
				d.log.Info("upgrade (SIGHUP): waiting for the rollout under way to end")
				waitingForRollout = true
			}
			if !sleepCtx(ctx, busyRetry) {
				return
			}
			continue
		}
		pid, err := d.upgrade(ctx)
		switch {
		case err == nil:
			d.log.Info("upgrade (SIGHUP): the new smoothserve is ready", "pid", pid)
			return
		case ctx.Err() != nil: // stopping (a stop is ErrReplaced too: tableflip's Exit)
			return
		case errors.Is(err, upgrade.ErrReplaced): // by an upgrade that began before the SIGHUP
			d.passSIGHUPOn()
			return
		case errors.Is(err, upgrade.ErrBusy), errors.Is(err, supervisor.ErrRolloutUnderWay):
			// The loop looks again: hupsAnswered, a rollout, the upgrade.
			if !sleepCtx(ctx, busyRetry) {
				return
			}
		default:
			d.log.Error("upgrade (SIGHUP) failed; this smoothserve goes on serving", "err", err)
			return
		}
	}
}

// rolloutUnderWay reports whether a service rolls now (its status says
// so): an upgrade would be refused (supervisor.Freeze).
func (d *Daemon) rolloutUnderWay() bool {
	for _, s := range d.sup.Status() {
		if s.LastRollout != nil && s.LastRollout.Outcome == api.RolloutRunning {
			return true
		}
	}
	return false
}

// sleepCtx waits for d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// busyRetry is how often an upgrade asked by SIGHUP looks again whether
// the upgrade or the rollout under way has ended.
const busyRetry = 100 * time.Millisecond

// passSIGHUPsOn passes the SIGHUPs sent to this process on to the one
// that replaced it, while this one lets go of its connections (an
// operator or systemd may not know its pid yet); once stop is called,
// they are ignored: until the process exits, one would end it.
func (d *Daemon) passSIGHUPsOn(signals <-chan os.Signal) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		for {
			select {
			case <-done:
				return
			case sig := <-signals:
				if sig == syscall.SIGHUP {
					d.passSIGHUPOn()
				}
			}
		}
	}()
	return func() {
		signal.Ignore(syscall.SIGHUP)
		close(done)
		<-ended
		for { // one taken in before Ignore, not read yet
			select {
			case sig := <-signals:
				if sig == syscall.SIGHUP {
					d.passSIGHUPOn()
				}
			default:
				return
			}
		}
	}
}

// passSIGHUPOn sends SIGHUP to the process that replaced this one: it
// answers every SIGHUP this one had.
func (d *Daemon) passSIGHUPOn() {
	d.hupsServed.Store(d.hupsSeen.Load())
	pid, err := d.upg.Successor()
	if err == nil && pid == os.Getpid() {
		err = errors.New("the pid file names this process")
	}
	if err == nil {
		err = syscall.Kill(pid, syscall.SIGHUP)
	}
	if err != nil {
		d.log.Error("upgrade (SIGHUP): another upgrade replaced this smoothserve meanwhile; passing the signal on to the new one failed: send it SIGHUP", "err", err)
		return
	}
	d.log.Info("upgrade (SIGHUP): another upgrade replaced this smoothserve meanwhile; the signal is passed on to the new one", "pid", pid)
}

// passHeapInUse gives the process an upgrade starts this one's heap in
// use, if there are client connections to carry over to it
// (upgrade.PassHeapInUse).
func (d *Daemon) passHeapInUse() {
	carrying := false
	for _, n := range d.px.OpenConnections() {
		carrying = carrying || n > 0
	}
	if err := d.upg.PassHeapInUse(carrying); err != nil {
		d.log.Warn("the new smoothserve will not make its heap resident before taking over", "err", err)
	}
}

// warmForTakeOver makes resident the memory that the connections the
// previous smoothserve passes will need here (upgrade.WarmForTakeOver).
// Nothing depends on it: a failure is logged, and the pages are faulted in
// as they are used.
func (d *Daemon) warmForTakeOver() {
	if n, err := d.upg.WarmForTakeOver(); err != nil {
		d.log.Warn("the heap is not made resident before taking over", "err", err)
	} else {
		d.log.Debug("made heap memory resident before taking over", "bytes", n)
	}
}

// becomeReady tells the previous smoothserve (if any), systemd and the pid
// file that this one serves, once its instances are ready; then, with the
// previous one gone, it stops the instances no longer configured and rolls
// the services whose settings changed. A process started by an upgrade
// begins accepting then, at its full priority.
func (d *Daemon) becomeReady(ctx context.Context) {
	log := d.log
	wait := d.config().UpgradeTimeout - time.Second
	if !d.upg.HasParent() {
		wait = maxStartTimeout(d.config()) + 5*time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	err := d.sup.WaitReady(wctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		log.Warn("not every instance is ready; serving with those that are", "err", err)
	}
	if d.upg.HasParent() {
		d.warmForTakeOver()
		if err := d.upg.RestorePriority(); err != nil {
			log.Error("not taking over", "err", err)
			return
		}
		d.ports.serve()
	}
	if err := d.upg.Ready(); err != nil {
		log.Error("telling the previous smoothserve that this one is ready", "err", err)
		return
	}
	if d.upg.HasParent() {
		// The upgrade that started this process succeeded: counted here,
		// where its count cannot miss the previous one's (passed to
		// goOnFrom, which adds to it).
		d.upgrades.ok.Add(1)
	}
	close(d.ready)
	log.Info("smoothserve is ready", "pid", os.Getpid())

	// Until the previous smoothserve has exited it may still send requests
	// to any instance it knew: leave them alone until then.
	pctx, cancel := context.WithTimeout(ctx, d.config().UpgradeDrainTimeout+30*time.Second)
	err = d.upg.WaitForParent(pctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		log.Warn("waiting for the previous smoothserve to exit", "err", err)
	}
	d.upg.RestoreGCAfterSettling()
	if ctx.Err() != nil {
		return
	}
	d.sup.StopLeftovers(ctx)
	for _, name := range d.sup.Changed() {
		log.Info("settings changed since the instances started: rolling", "service", name)
		if _, err := d.sup.Restart(ctx, name, "configuration changed (reload)"); err != nil {
			log.Error("rolling onto the changed settings", "service", name, "err", err)
		}
	}
}
