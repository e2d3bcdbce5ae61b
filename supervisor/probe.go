package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"smoothserve/control/api"
)

// pollInterval is how often a starting instance is probed: short enough that
// an instance joins rotation soon after it listens, long enough to cost
// nothing.
const pollInterval = 25 * time.Millisecond

const (
	dialTimeout   = time.Second     // a probe's connect; loopback answers at once
	healthTimeout = 2 * time.Second // a health check's whole request, at start
)

// ErrPortInUse is why an instance cannot start on a port another process
// listens on.
var ErrPortInUse = errors.New(api.PortInUse)

// healthClient makes health checks. It keeps no idle connections (a probe
// every few milliseconds must not pile them up in the instance), follows no
// redirect (a 3xx is not ready), and ignores HTTP_PROXY: instances are local.
var healthClient = &http.Client{
	Transport: &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{Timeout: dialTimeout}).DialContext,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// checkPortFree fails when something accepts connections on addr: starting
// an instance there would fail, or worse, look ready at once.
func checkPortFree(ctx context.Context, addr string, port int) error {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil // refused (or unreachable): nobody serves there
	}
	c.Close()
	return fmt.Errorf("port %d is %w", port, ErrPortInUse)
}

// waitReady polls addr until the instance answers: a TCP connect, or a 2xx
// to GET healthPath when set. It fails when p exits first, when timeout
// passes (the last probe's error says why), or when ctx is done.
func waitReady(ctx context.Context, p process, addr, healthPath string, timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
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
		select {
		case <-p.Done():
			return exited()
		case <-tick.C:
		case <-pctx.Done():
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("not ready within %v: %w", timeout, last)
		}
	}
}

// probe checks once whether the instance at addr is ready: a connect, or a
// 2xx to GET healthPath within timeout.
func probe(ctx context.Context, addr, healthPath string, timeout time.Duration) error {
	if healthPath == "" {
		d := net.Dialer{Timeout: dialTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
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
	resp, err := healthClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check GET %s: %s", healthPath, resp.Status)
	}
	return nil
}
