package autorestart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"smoothserve/config"
	"smoothserve/supervisor"
	"smoothserve/watch"
)

// Applier makes a service's new settings the running ones, by a rollout
// (daemon.Daemon.Apply): only that service's, never another's.
type Applier interface {
	Apply(ctx context.Context, svc *config.Service, trigger string) (*supervisor.Rollout, error)
	// Running is the configuration smoothserve runs with now: the
	// services whose instances run, with the settings they run with.
	Running() *config.Config
}

// Options configure a Deployer. Config and Apply are required.
type Options struct {
	Config *config.Config // the configuration smoothserve runs with
	Apply  Applier
	Log    *slog.Logger // nil: slog.Default()
}

// Deployer watches the files of the auto_restart services and rolls them
// out on changes.
//
// Ownership: Run's goroutine owns queues (one per service) and passes each
// change to that service's worker; cfgPath is read-only.
type Deployer struct {
	cfgPath string
	apply   Applier
	log     *slog.Logger
	w       *watch.Watcher
}

// New watches the files of cfg's auto_restart services.
func New(opts Options) (*Deployer, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	w, err := watch.New(log)
	if err != nil {
		return nil, fmt.Errorf("auto_restart: %w", err)
	}
	d := &Deployer{cfgPath: opts.Config.Path, apply: opts.Apply, log: log, w: w}
	if err := w.Set(Specs(opts.Config, opts.Config)); err != nil {
		return nil, fmt.Errorf("auto_restart: %w", err)
	}
	return d, nil
}

// Watch makes the watched files those of cfg's auto_restart services
// (after a reload: cfg is both on disk and running).
func (d *Deployer) Watch(cfg *config.Config) error {
	return d.w.Set(Specs(cfg, cfg))
}

// Specs is what to watch: for each enabled service of disk (the
// configuration on disk) with auto_restart, its executable, its yaml file
// and its watch_files; and for each enabled auto_restart service of
// running that disk no longer has, or has disabled, the files it runs
// with. Such a service's instances keep running until smoothtool reload,
// so its yaml coming back (a git checkout or an rsync --delete that
// removed it for a while) or enabled again is a change like any other,
// and so is a new binary meanwhile.
func Specs(disk, running *config.Config) []watch.Spec {
	var specs []watch.Spec
	for _, svc := range disk.Services {
		if svc.Enabled && svc.AutoRestart {
			specs = append(specs, specOf(svc))
		}
	}
	for _, svc := range running.Services {
		if on := disk.Service(svc.Name); (on == nil || !on.Enabled) && svc.Enabled && svc.AutoRestart {
			specs = append(specs, specOf(svc))
		}
	}
	return specs
}

// specOf is what to watch for svc: its executable, its yaml file and its
// watch_files.
func specOf(svc *config.Service) watch.Spec {
	files := append([]string{svc.ExecutablePath, svc.File}, svc.WatchFiles...)
	return watch.Spec{Name: svc.Name, Files: files, Ignore: svc.WatchIgnore, Quiet: svc.DelayUpdateTime}
}

// Run watches and rolls out until ctx is done; it returns once the
// rollouts it started have ended.
func (d *Deployer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchErr := make(chan error, 1)
	go func() { watchErr <- d.w.Run(ctx) }()

	var wg sync.WaitGroup
	defer wg.Wait()
	queues := make(map[string]chan watch.Change)
	for {
		select {
		case <-ctx.Done():
			return <-watchErr
		case err := <-watchErr:
			if err == nil { // Run ends only when ctx does
				return nil
			}
			cancel()
			return fmt.Errorf("auto_restart: watching files: %w", err)
		case ch, ok := <-d.w.Changes():
			if !ok { // the watcher has stopped; watchErr says why
				return <-watchErr
			}
			q := queues[ch.Name]
			if q == nil {
				q = make(chan watch.Change, 1)
				queues[ch.Name] = q
				wg.Go(func() { d.worker(ctx, q) })
			}
			// One change waiting is enough: applying it reads the files
			// as they are then, which covers every later change too.
			select {
			case q <- ch:
			default:
			}
		}
	}
}

// worker applies one service's changes one after another.
func (d *Deployer) worker(ctx context.Context, q <-chan watch.Change) {
	for {
		select {
		case <-ctx.Done():
			return
		case ch := <-q:
			d.applyWhenValid(ctx, q, ch)
		}
	}
}

// Retries of a change that met an invalid configuration (another
// service's file mid-edit, a typo): the first after retryFirst, each next
// twice as late, up to retryMost. Variables for the tests.
var (
	retryFirst = time.Second
	retryMost  = 30 * time.Second
)

// applyWhenValid applies ch; while the configuration is invalid, it tries
// again (its service's next change, when one comes first, instead), so
// that a deploy is not lost to an error in a file it has nothing to do
// with: it rolls out once the files are fixed. Errors already logged are
// not logged again.
func (d *Deployer) applyWhenValid(ctx context.Context, q <-chan watch.Change, ch watch.Change) {
	logged := ""
	for wait := retryFirst; ; wait = min(2*wait, retryMost) {
		errs, valid := d.applyChange(ctx, ch, logged, wait)
		if valid {
			return
		}
		logged = errs
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case next := <-q:
			t.Stop()
			ch, wait, logged = next, retryFirst/2, "" // wait doubled by the loop
		case <-t.C:
		}
	}
}

// applyChange reads the configuration afresh and applies the service's
// part of it: the other services' files are not applied. A configuration
// that is invalid applies nothing (valid false): its errors are logged
// unless they are those already logged, and errs is them, for the next
// try, which comes after wait.
func (d *Deployer) applyChange(ctx context.Context, ch watch.Change, logged string, wait time.Duration) (errs string, valid bool) {
	trigger := ch.Paths[0]
	if len(ch.Paths) > 1 {
		trigger = fmt.Sprintf("%s (and %d more)", ch.Paths[0], len(ch.Paths)-1)
	}
	log := d.log.With("service", ch.Name, "trigger", trigger)
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		if errs = err.Error(); errs != logged {
			logInvalid(log, err, wait)
		}
		return errs, false
	}
	if err := d.w.Set(Specs(cfg, d.apply.Running())); err != nil {
		log.Error("auto_restart: watching the new configuration's files", "err", err)
	}
	svc := cfg.Service(ch.Name)
	switch {
	case svc == nil:
		log.Warn("auto_restart: the service is no longer configured; its instances keep running until smoothtool reload (or an upgrade), and its files are still watched: its file coming back rolls it out")
		return "", true
	case !svc.Enabled:
		log.Warn("auto_restart: the service is now disabled; its instances keep running until smoothtool reload (or an upgrade), and its files are still watched: enabling it again rolls it out")
		return "", true
	}
	log.Info("auto_restart: files changed; rolling out")
	r, err := d.apply.Apply(ctx, svc, trigger)
	if err != nil {
		log.Error("auto_restart: rollout did not complete; the next change tries again", "err", err)
		return "", true
	}
	if r.Outcome == supervisor.RolloutKept {
		log.Info("auto_restart: the service is stopped (smoothtool stop): its new settings run at its start")
		return "", true
	}
	log.Info("auto_restart: rolled out", "instances", len(r.Instances), "took", r.FinishedAt.Sub(r.StartedAt).String())
	return "", true
}

// logInvalid logs each problem of an invalid configuration, and when the
// change is tried again.
func logInvalid(log *slog.Logger, err error, wait time.Duration) {
	var list config.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			log.Error("auto_restart: configuration is invalid; nothing changes: " + e.Error())
		}
	} else {
		log.Error("auto_restart: configuration is invalid; nothing changes", "err", err)
	}
	log.Warn(fmt.Sprintf("auto_restart: the rollout waits for a valid configuration: tried again in %v (then less often, up to every %v) and at the service's next change", wait, retryMost))
}
