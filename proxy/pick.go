package proxy

import (
	"context"
	"fmt"

	"smoothserve/upstream"
)

// picker chooses the instances of a service one request is tried on, the
// same way over HTTP/1.1 and HTTP/2: the least busy in rotation not tried
// yet; with none, it waits for one to come (up to start_timeout), but
// after a failure on every instance only if one of them has died
// (instanceDied). It counts the instances the request was sent to
// (maxSends).
type picker struct {
	set     *upstream.Set
	tried   upstream.Tried
	lastErr error // the last failure, if the request failed on every instance it was tried on
	waitCtx context.Context
	cancel  context.CancelFunc
	waits   int
	sends   int             // instances the request went out to (not a stale pooled connection's second send: see maxSends)
	client  upstream.Client // looked at while the request waits for an instance (Gone); nil: not
}

// sent records that the request goes out to an instance.
func (p *picker) sent() { p.sends++ }

// mayResend reports whether a request that an instance got, and failed
// without answering, may go to another (maxSends).
func (p *picker) mayResend() bool { return p.sends < maxSends }

// next returns the instance to try, counted in flight (Release it), or
// the error the request is to be answered with.
func (p *picker) next() (*upstream.Backend, error) {
	for {
		if b := p.set.Pick(&p.tried); b != nil {
			return b, nil
		}
		if p.lastErr != nil && !instanceDied(p.set, &p.tried) {
			return nil, p.lastErr
		}
		if p.waitCtx == nil {
			p.waitCtx, p.cancel = context.WithTimeout(context.Background(), p.set.StartTimeout())
		}
		p.waits++
		if p.waits <= maxAttempts {
			ok, err := p.wait()
			if err != nil {
				return nil, err
			}
			if ok {
				continue
			}
		}
		if p.set.Stopped() {
			return nil, fmt.Errorf("%w: %s", errServiceStopped, p.set.Name)
		}
		return nil, fmt.Errorf("%w for %s within %v", errNoInstance, p.set.Name, p.set.StartTimeout())
	}
}

// wait is set.Wait under waitCtx, looking at the client as often as the
// wait for an answer does (upstream.WatchEvery):
// one that has left ends the wait (errClientGone: logged 499), and its
// request goes to no instance that comes later.
func (p *picker) wait() (bool, error) {
	for {
		ctx, cancel := context.WithTimeout(p.waitCtx, upstream.WatchEvery)
		ok := p.set.Wait(ctx, &p.tried)
		cancel()
		switch {
		case ok:
			return true, nil
		case p.waitCtx.Err() != nil:
			return false, nil
		case p.client != nil && p.client.Gone():
			return false, fmt.Errorf("%w while it waited for an instance of %s", errClientGone, p.set.Name)
		}
	}
}

// failed records that the request failed on b, and may go to another.
func (p *picker) failed(b *upstream.Backend, err error) {
	p.tried.Add(b)
	p.lastErr = err
}

// done releases what waiting held.
func (p *picker) done() {
	if p.cancel != nil {
		p.cancel()
	}
}

// instanceDied reports, for a request that failed on every instance in
// rotation, whether it is worth waiting for another: one appears within
// deathGrace, or one it failed on left rotation (it died, and is being
// replaced).
func instanceDied(set *upstream.Set, tried *upstream.Tried) bool {
	ctx, cancel := context.WithTimeout(context.Background(), deathGrace)
	defer cancel()
	return set.Wait(ctx, tried) || tried.AnyDraining()
}
