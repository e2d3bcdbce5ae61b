package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"smoothserve/control/api"
	"smoothserve/internal/nofile"
)

// pollInterval is how often a starting instance is probed: short enough that
// an instance joins rotation soon after it listens, long enough to cost
// nothing.
const pollInterval = 25 * time.Millisecond

const (
	dialTimeout   = time.Second     // a probe's connect; loopback answers at once
	healthTimeout = 2 * time.Second // a health check's whole request, at start
)

// probeDialer connects the probes and the port check: each connection is
// closed after one exchange, so no TCP keep-alive is set up (four
// setsockopt calls each).
var probeDialer = net.Dialer{Timeout: dialTimeout, KeepAlive: -1}

// roomKey is the context key of the Room the probes and a start ask when
// this process is out of descriptors (SetMakeRoom): every wait of an
// instance has a context made from the supervisor's killCtx.
type roomKey struct{}

func withRoom(ctx context.Context, room nofile.Room) context.Context {
	return context.WithValue(ctx, roomKey{}, room)
}

// roomOf is ctx's Room; nil if it has none.
func roomOf(ctx context.Context) nofile.Room {
	r, _ := ctx.Value(roomKey{}).(nofile.Room)
	return r
}

// probeDial connects a probe to addr. Out of descriptors, it asks ctx's
// Room to make some and dials again.
func probeDial(ctx context.Context, addr string) (c net.Conn, err error) {
	err = roomOf(ctx).Retry("probing "+addr, func() (err error) {
		c, err = probeDialer.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// ErrPortInUse is why an instance cannot start on a port another process
// listens on.
var ErrPortInUse = errors.New(api.PortInUse)

// checkPortFree fails when something accepts connections on addr: starting
// an instance there would fail, or worse, look ready at once.
func checkPortFree(ctx context.Context, addr string, port int) error {
	c, err := probeDial(ctx, addr)
	if nofile.Exhausted(err) {
		return fmt.Errorf("checking whether port %d is free: %w", port, err)
	}
	if err != nil {
		return nil // refused (or unreachable): nobody serves there
	}
	c.Close()
	return fmt.Errorf("port %d is %w", port, ErrPortInUse)
}

// waitReady polls addr until the instance answers: a TCP connect, or a 2xx
// to GET healthPath when set. The first probe comes after first (half of
// timeout at most), the next ones every pollInterval. It fails when p exits
// first, when timeout passes (the last probe's error says why), or when
// ctx is done.
func waitReady(ctx context.Context, p process, addr, healthPath string, timeout, first time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	next := time.NewTimer(min(first, timeout/2))
	defer next.Stop()
	// exited is why p failed to become ready if it has exited, else nil.
	exited := func() error {
		select {
		case <-p.Done():
			return fmt.Errorf("pid %d exited before it was ready: %s", p.Pid(), exitReason(p.Err()))
		default:
			return nil
		}
	}
	var last error
	for {
		select {
		case <-p.Done():
			return exited()
		case <-next.C:
		case <-pctx.Done():
			if err := ctx.Err(); err != nil {
				return err
			}
			if last == nil {
				last = errors.New("no probe made")
			}
			return fmt.Errorf("not ready within %v: %w", timeout, last)
		}
		if err := exited(); err != nil {
			return err
		}
		err := probe(pctx, addr, healthPath, healthTimeout)
		if err == nil {
			return exited() // the answer may have come as the process died
		}
		// A probe cut short by the deadline says less than the one before.
		if last == nil || pctx.Err() == nil {
			last = err
		}
		next.Reset(pollInterval)
	}
}

// probe checks once whether the instance at addr is ready: a connect, or a
// 2xx to GET healthPath within timeout.
func probe(ctx context.Context, addr, healthPath string, timeout time.Duration) error {
	if healthPath == "" {
		c, err := probeDial(ctx, addr)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+healthPath, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", healthPath, err)
	}
	code, status, err := healthExchange(ctx, addr, req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if code < 200 || code > 299 {
		return fmt.Errorf("health check GET %s: %s", healthPath, status)
	}
	return nil
}

// healthExchange sends req over a connection of its own, closed after the
// answer (Connection: close: a probe every few milliseconds must not pile
// idle connections up in the instance), and returns the final answer's
// status; its body, read up to 64 KiB, is dropped. A redirect is an
// answer (a 3xx is not ready); no proxy is asked: instances are local.
//
// It writes and reads with net/http's wire code, not its Transport: a
// Transport's request takes several goroutines (the dial, the connection's
// reader and writer) and their hand-offs, which cost a restart of 3
// instances 1.7 ms of the daemon's CPU on this project's machines.
func healthExchange(ctx context.Context, addr string, req *http.Request) (int, string, error) {
	c, err := probeDial(ctx, addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	// The context's end (its timeout, or its parent's) closes the
	// connection, and so ends a write or read under way.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	req.Close = true
	if err := req.Write(c); err != nil {
		return 0, "", ctxErr(ctx, err)
	}
	br := bufio.NewReader(c)
	for range maxInterim + 1 {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return 0, "", ctxErr(ctx, err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // interim: the final answer follows
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return resp.StatusCode, resp.Status, nil
	}
	return 0, "", fmt.Errorf("GET %s: more than %d interim answers", req.URL.RequestURI(), maxInterim)
}

// maxInterim bounds the interim (1xx) answers a health check skips.
const maxInterim = 8

// ctxErr is err, or the context's error once it has ended (the connection
// was closed for it).
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
