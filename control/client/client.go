package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"smoothserve/control/api"
)

// ErrNotRunning is returned (for errors.Is) when no daemon is behind the
// socket: there is no socket, it refuses connections, or the path is not a
// socket at all.
var ErrNotRunning = errors.New("smoothserve is not running")

// Client talks to a daemon over its control socket. It has no timeout of
// its own: every call is bounded by its context.
type Client struct {
	path string
}

// Dial returns a client of the daemon whose control socket is socketPath.
// It connects on each call, not now.
func Dial(socketPath string) *Client { return &Client{path: socketPath} }

// APIError is an error answer of the daemon.
type APIError struct {
	Code int    // HTTP status
	Msg  string // the daemon's error
}

func (e *APIError) Error() string { return e.Msg }

// Unwrap makes 404 and 409 match api.ErrUnknownService and
// api.ErrDisabled, as the server mapped them.
func (e *APIError) Unwrap() error {
	switch e.Code {
	case 404:
		return api.ErrUnknownService
	case 409:
		return api.ErrDisabled
	}
	return nil
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var st api.Status
	if err := c.call(ctx, "GET", "/v1/status", &st, nil); err != nil {
		return nil, err
	}
	return &st, nil
}

// BriefStatus returns the daemon's status without the instances' CPU and
// memory, which cost the daemon a scan of /proc.
func (c *Client) BriefStatus(ctx context.Context) (*api.Status, error) {
	var st api.Status
	if err := c.call(ctx, "GET", "/v1/status?usage=0", &st, nil); err != nil {
		return nil, err
	}
	return &st, nil
}

// StatusJSON returns the daemon's status as the daemon wrote it.
func (c *Client) StatusJSON(ctx context.Context) ([]byte, error) {
	var raw []byte
	if err := c.call(ctx, "GET", "/v1/status", &raw, nil); err != nil {
		return nil, err
	}
	return raw, nil
}

// Restart rolls the service's instances (name "all": every running service
// in turn) and returns when it is done. On failure it returns the error
// with the rollouts as far as they went.
func (c *Client) Restart(ctx context.Context, name string) ([]*api.Rollout, error) {
	var ok api.RestartBody
	var failed api.ErrorBody
	err := c.call(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/restart", &ok, &failed)
	if err != nil {
		return failed.Rollouts, err
	}
	return ok.Rollouts, nil
}

// Stop stops the service and returns when its instances are stopped.
func (c *Client) Stop(ctx context.Context, name string) error {
	return c.call(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/stop", nil, nil)
}

// Start starts the stopped service (name "all": every stopped one) and
// returns when its instances are ready.
func (c *Client) Start(ctx context.Context, name string) error {
	return c.call(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/start", nil, nil)
}

// Shutdown asks the daemon to stop, gracefully or, with force, at once. It
// returns when the daemon has begun, not when it has exited.
func (c *Client) Shutdown(ctx context.Context, force bool) error {
	path := "/v1/shutdown"
	if force {
		path += "?force=1"
	}
	return c.call(ctx, "POST", path, nil, nil)
}

// Upgrade asks the daemon to replace itself and waits for the outcome.
func (c *Client) Upgrade(ctx context.Context) (*api.UpgradeResult, error) {
	var res api.UpgradeResult
	if err := c.call(ctx, "POST", "/v1/upgrade", &res, nil); err != nil {
		return nil, err
	}
	return &res, nil
}

// Reload asks the daemon to apply the configuration on disk, and returns
// what it did to each service.
func (c *Client) Reload(ctx context.Context) (*api.ReloadResult, error) {
	var res api.ReloadResult
	if err := c.call(ctx, "POST", "/v1/reload", &res, nil); err != nil {
		return nil, err
	}
	return &res, nil
}

// Drain drains the host (drain.go of the daemon); with wait, it returns
// once drained. timeout above 0 bounds the drain.
func (c *Client) Drain(ctx context.Context, wait bool, timeout time.Duration) (*api.HostStatus, error) {
	q := url.Values{}
	if wait {
		q.Set("wait", "1")
	}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	var st api.HostStatus
	if err := c.call(ctx, "POST", "/v1/drain?"+q.Encode(), &st, nil); err != nil {
		return nil, err
	}
	return &st, nil
}

// Undrain puts the host back in its load balancer's rotation.
func (c *Client) Undrain(ctx context.Context) (*api.HostStatus, error) {
	var st api.HostStatus
	if err := c.call(ctx, "POST", "/v1/undrain", &st, nil); err != nil {
		return nil, err
	}
	return &st, nil
}

// DrainInstance takes instance name#slot out of rotation; force takes the
// last one in rotation too.
func (c *Client) DrainInstance(ctx context.Context, name string, slot int, force bool) error {
	path := instancePath(name, slot) + "/drain"
	if force {
		path += "?force=1"
	}
	return c.call(ctx, "POST", path, nil, nil)
}

// UndrainInstance puts instance name#slot back in rotation.
func (c *Client) UndrainInstance(ctx context.Context, name string, slot int) error {
	return c.call(ctx, "POST", instancePath(name, slot)+"/undrain", nil, nil)
}

func instancePath(name string, slot int) string {
	return "/v1/services/" + url.PathEscape(name) + "/instances/" + strconv.Itoa(slot)
}

// call does one request and decodes a 200's body into ok, an error's into
// failed (either may be nil). An ok of type *[]byte gets the body as it is.
func (c *Client) call(ctx context.Context, method, path string, ok any, failed *api.ErrorBody) error {
	a, err := c.exchange(ctx, method, path)
	if err != nil {
		return err
	}
	if a.code == 200 {
		if raw, isRaw := ok.(*[]byte); isRaw && json.Valid(a.body) {
			*raw = a.body
			return nil
		}
		if ok == nil {
			return nil
		}
		if err := json.Unmarshal(a.body, ok); err != nil {
			return fmt.Errorf("smoothserve at %s: %s %s: bad answer: %w", c.path, method, path, err)
		}
		return nil
	}
	if failed == nil {
		failed = &api.ErrorBody{}
	}
	// The mux answers an unknown route (405, 404) in plain text.
	if json.Unmarshal(a.body, failed) != nil || failed.Error == "" {
		failed.Error = fmt.Sprintf("%s %s: %s: %s", method, path, a.status, plainText(a.body))
	}
	return &APIError{Code: a.code, Msg: failed.Error}
}

// connError says why the daemon could not be reached, as ErrNotRunning when
// it is not there.
func (c *Client) connError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w: no control socket at %s", ErrNotRunning, c.path)
	case errors.Is(err, syscall.ECONNREFUSED):
		// connect(2) to a path that is not a socket is refused too.
		if info, lerr := os.Lstat(c.path); lerr == nil && info.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("%w: control socket %s: the path exists and is not a socket (a %s); is ControlSocket right?",
				ErrNotRunning, c.path, FileKind(info.Mode()))
		}
		return fmt.Errorf("%w: control socket %s refuses connections (left by a smoothserve that exited?)", ErrNotRunning, c.path)
	}
	return fmt.Errorf("smoothserve at %s: %w", c.path, OpCause(err))
}

// FileKind names a file's type, for a message about a path that should
// be a socket.
func FileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "folder"
	case m.IsRegular():
		return "regular file"
	case m.Type()&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.Type()&fs.ModeNamedPipe != 0:
		return "named pipe"
	}
	return "file of mode " + m.Type().String()
}

// OpCause strips a *net.OpError of the op and address an error already
// names: "connect: permission denied" rather than "dial unix /x: connect:
// permission denied" after the path.
func OpCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}
