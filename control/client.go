package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
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
	hc   *http.Client
}

// Dial returns a client of the daemon whose control socket is socketPath.
// It connects on each call, not now.
func Dial(socketPath string) *Client {
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socketPath)
		},
		DisableCompression: true,
	}
	return &Client{path: socketPath, hc: &http.Client{Transport: tr}}
}

// APIError is an error response of the daemon.
type APIError struct {
	Code int    // HTTP status
	Msg  string // the daemon's error
}

func (e *APIError) Error() string { return e.Msg }

// Unwrap makes 404 and 409 match api.ErrUnknownService and
// api.ErrDisabled, as the server mapped them.
func (e *APIError) Unwrap() error {
	switch e.Code {
	case http.StatusNotFound:
		return api.ErrUnknownService
	case http.StatusConflict:
		return api.ErrDisabled
	}
	return nil
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var st api.Status
	if err := c.call(ctx, http.MethodGet, "/v1/status", &st, nil); err != nil {
		return nil, err
	}
	return &st, nil
}

// StatusJSON returns the daemon's status exactly as it sent it.
func (c *Client) StatusJSON(ctx context.Context) ([]byte, error) {
	var raw []byte
	if err := c.call(ctx, http.MethodGet, "/v1/status", &raw, nil); err != nil {
		return nil, err
	}
	return raw, nil
}

// Restart rolls the service's instances (name "all": every running service
// in turn) and returns when it is done. On failure it returns the error
// with the rollouts as far as they went.
func (c *Client) Restart(ctx context.Context, name string) ([]*api.Rollout, error) {
	var ok restartBody
	var failed errorBody
	err := c.call(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(name)+"/restart", &ok, &failed)
	if err != nil {
		return failed.Rollouts, err
	}
	return ok.Rollouts, nil
}

// Stop stops the service and returns when its instances are stopped.
func (c *Client) Stop(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(name)+"/stop", nil, nil)
}

// Start starts the stopped service (name "all": every stopped one) and
// returns when its instances are ready.
func (c *Client) Start(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(name)+"/start", nil, nil)
}

// Shutdown asks the daemon to stop, gracefully or, with force, at once. It
// returns when the daemon has begun, not when it has exited.
func (c *Client) Shutdown(ctx context.Context, force bool) error {
	path := "/v1/shutdown"
	if force {
		path += "?force=1"
	}
	return c.call(ctx, http.MethodPost, path, nil, nil)
}

// Upgrade asks the daemon to replace itself and waits for the outcome.
func (c *Client) Upgrade(ctx context.Context) (*api.UpgradeResult, error) {
	var res api.UpgradeResult
	if err := c.call(ctx, http.MethodPost, "/v1/upgrade", &res, nil); err != nil {
		return nil, err
	}
	return &res, nil
}

// Reload asks the daemon to apply the configuration on disk, and returns
// what it did to each service.
func (c *Client) Reload(ctx context.Context) (*api.ReloadResult, error) {
	var res api.ReloadResult
	if err := c.call(ctx, http.MethodPost, "/v1/reload", &res, nil); err != nil {
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
	if err := c.call(ctx, http.MethodPost, "/v1/drain?"+q.Encode(), &st, nil); err != nil {
		return nil, err
	}
	return &st, nil
}

// Undrain puts the host back in its load balancer's rotation.
func (c *Client) Undrain(ctx context.Context) (*api.HostStatus, error) {
	var st api.HostStatus
	if err := c.call(ctx, http.MethodPost, "/v1/undrain", &st, nil); err != nil {
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
	return c.call(ctx, http.MethodPost, path, nil, nil)
}

// UndrainInstance puts instance name#slot back in rotation.
func (c *Client) UndrainInstance(ctx context.Context, name string, slot int) error {
	return c.call(ctx, http.MethodPost, instancePath(name, slot)+"/undrain", nil, nil)
}

func instancePath(name string, slot int) string {
	return "/v1/services/" + url.PathEscape(name) + "/instances/" + strconv.Itoa(slot)
}

// call does one request and decodes a 200's body into ok, an error's into
// failed (either may be nil). An ok of type *[]byte gets the body as it is.
func (c *Client) call(ctx context.Context, method, path string, ok any, failed *errorBody) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://smoothserve"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer of smoothserve at %s: %w", c.path, err)
	}
	if resp.StatusCode == http.StatusOK {
		if raw, isRaw := ok.(*[]byte); isRaw && json.Valid(body) {
			*raw = body
			return nil
		}
		if ok == nil {
			return nil
		}
		if err := json.Unmarshal(body, ok); err != nil {
			return fmt.Errorf("smoothserve at %s: %s %s: bad answer: %w", c.path, method, path, err)
		}
		return nil
	}
	if failed == nil {
		failed = &errorBody{}
	}
	// The mux answers an unknown route (405, 404) in plain text.
	if json.Unmarshal(body, failed) != nil || failed.Error == "" {
		failed.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(bytes.ToValidUTF8(body, nil))))
	}
	return &APIError{Code: resp.StatusCode, Msg: failed.Error}
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
				ErrNotRunning, c.path, fileKind(info.Mode()))
		}
		return fmt.Errorf("%w: control socket %s refuses connections (left by a smoothserve that exited?)", ErrNotRunning, c.path)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = opCause(ue.Err)
	}
	return fmt.Errorf("smoothserve at %s: %w", c.path, err)
}
