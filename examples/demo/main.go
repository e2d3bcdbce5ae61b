// Demo is a small web service that follows the rules for services run under
// smoothserve: it listens on the port given by -port, says on stderr when it
// is listening, and on SIGTERM or SIGINT stops accepting, finishes the
// requests in flight, closes its WebSockets (/ws, an echo) with 1001 going
// away, and exits 0.
//
// Its endpoints (see handlers.go) and fault flags exist for smoothserve's
// tests and benchmarks: -fail-start, -never-ready, -start-delay and
// -log-every make it misbehave in the ways a real service can, and
// -idle-timeout makes it close idle keep-alive connections as real servers
// do (Node's http after 5 s, gunicorn after 2 s), or sooner.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// defaultIdleTimeout is long enough that a pooled connection of the proxy
// is seldom closed under it; -idle-timeout=200ms is an instance that does
// so all the time, which the proxy must survive without a failed request.
const defaultIdleTimeout = 120 * time.Second

// shutdownTimeout bounds how long in-flight requests may run after SIGTERM.
// It is above the 60000 ms cap of /slow so that any slow request completes.
const shutdownTimeout = 60 * time.Second

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1 // -fail-start, listen error, or a drain that overran shutdownTimeout
	exitUsage    = 2
	exitLogWrite = 3 // -log-every could not write to stdout
)

type options struct {
	addr        string
	port        int
	version     string
	failStart   bool
	neverReady  bool
	startDelay  time.Duration
	logEvery    time.Duration
	idleTimeout time.Duration
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultVersion is the version a build reports when neither -version nor
// DEMO_VERSION says otherwise; tests build a "new release" with
// -ldflags "-X main.defaultVersion=2".
var defaultVersion = "1"

// parseOptions reads the flags. The version is DEMO_VERSION when that is set
// (a service file changes env, not args, for a rollout), else -version.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1", "host or IP to listen on")
	fs.IntVar(&o.port, "port", 0, "TCP port to listen on (required)")
	fs.StringVar(&o.version, "version", defaultVersion, "version reported by / (env DEMO_VERSION overrides)")
	fs.BoolVar(&o.failStart, "fail-start", false, "exit 1 at once, as a service that cannot start")
	fs.BoolVar(&o.neverReady, "never-ready", false, "never listen; wait for SIGTERM")
	fs.DurationVar(&o.startDelay, "start-delay", 0, "sleep this long before listening")
	fs.DurationVar(&o.logEvery, "log-every", 0, "write a numbered line to stdout at this interval")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", defaultIdleTimeout, "close a keep-alive connection idle this long (http.Server.IdleTimeout; 0: Go's default, here never)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
		fmt.Fprintln(stderr, err)
		return o, err
	}
	if o.port < 1 || o.port > 65535 {
		err := fmt.Errorf("demo: -port=%d: want a port in 1..65535", o.port)
		fmt.Fprintln(stderr, err)
		return o, err
	}
	if o.startDelay < 0 || o.logEvery < 0 || o.idleTimeout < 0 {
		err := errors.New("demo: -start-delay, -log-every and -idle-timeout must not be negative")
		fmt.Fprintln(stderr, err)
		return o, err
	}
	if v := os.Getenv("DEMO_VERSION"); v != "" {
		o.version = v
	}
	return o, nil
}

// errLogWrite is the cause given to the run context when stdout fails.
var errLogWrite = errors.New("writing log line to stdout")

// errStopSignal marks a stop asked for by a signal: the normal way to end.
var errStopSignal = errors.New("signal")

// run is main without os.Exit, so that the tests can run it in a child
// process. It is a group of actors: the signal waiter, the log writer and the
// server; the first to end cancels ctx, and the others follow.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if o.failStart {
		fmt.Fprintln(stderr, "demo: failing on purpose (-fail-start)")
		return exitFailed
	}
	// Without this, a write to a closed stdout pipe kills the process with
	// SIGPIPE before -log-every can report it and exit 3.
	signal.Ignore(syscall.SIGPIPE)
	pid := os.Getpid()

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("%w %v", errStopSignal, s))
		case <-ctx.Done():
		}
	}()

	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		if o.logEvery > 0 {
			if err := writeLogLines(ctx, stdout, o.logEvery, pid); err != nil {
				err = fmt.Errorf("%w: %w", errLogWrite, err)
				fmt.Fprintf(stderr, "demo pid=%d: %v\n", pid, err)
				cancel(err)
			}
		}
	}()

	code := serve(ctx, o, pid, stderr)
	cancel(nil)
	<-logDone

	if errors.Is(context.Cause(ctx), errLogWrite) {
		return exitLogWrite
	}
	return code
}

// serve listens (unless -never-ready), serves until ctx is done, then drains.
// It prints the start line and the stop line.
func serve(ctx context.Context, o options, pid int, stderr io.Writer) int {
	stopped := func(what string) {
		fmt.Fprintf(stderr, "demo pid=%d stopped (%v)%s\n", pid, context.Cause(ctx), what)
	}
	if o.neverReady {
		<-ctx.Done()
		stopped(", never listened (-never-ready)")
		return exitOK
	}
	if o.startDelay > 0 {
		t := time.NewTimer(o.startDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			stopped(" during -start-delay")
			return exitOK
		}
	}

	addr := net.JoinHostPort(o.addr, strconv.Itoa(o.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "demo: listen on %s: %v\n", addr, err)
		return exitFailed
	}
	ws := newWebSockets()
	srv := &http.Server{
		Handler:           newHandler(pid, o.port, o.version, ws),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       o.idleTimeout,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "demo pid=%d listening on %s version=%s\n", pid, ln.Addr(), o.version)

	select {
	case err := <-serveErr:
		fmt.Fprintf(stderr, "demo pid=%d: serving on %s: %v\n", pid, addr, err)
		return exitFailed
	case <-ctx.Done():
	}

	began := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	// Shutdown does not track WebSockets (hijacked connections): they close
	// with the demo's own close frame while it drains the requests.
	ws.goingAway()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		<-serveErr
		stopped(fmt.Sprintf(", drain overran %v: %v", shutdownTimeout, err))
		return exitFailed
	}
	<-serveErr // http.ErrServerClosed
	if err := ws.wait(sctx); err != nil {
		stopped(fmt.Sprintf(", WebSockets still open after %v: %v", shutdownTimeout, err))
		return exitFailed
	}
	stopped(fmt.Sprintf(", drained in %v", time.Since(began).Round(time.Millisecond)))
	return exitOK
}

// writeLogLines writes "demo pid=P line=N" every interval, N counting from 1,
// so that a test can see whether lines were lost across a log reopen.
func writeLogLines(ctx context.Context, w io.Writer, every time.Duration, pid int) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if _, err := fmt.Fprintf(w, "demo pid=%d line=%d\n", pid, n); err != nil {
			return err
		}
	}
}
