package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"smoothserve/control/api"
	"smoothserve/internal/httpstop"
)

// Server serves the control API for one Daemon.
//
// Ownership: d, log and srv are set in NewServer and read-only after; srv
// guards its own listener and connections.
type Server struct {
	d   Daemon
	log *slog.Logger
	srv *httpstop.Server
}

// NewServer returns a server of d's control API; a nil logger discards.
func NewServer(d Daemon, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{d: d, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("POST /v1/services/{name}/restart", s.restart)
	mux.HandleFunc("POST /v1/services/{name}/stop", s.stopService)
	mux.HandleFunc("POST /v1/services/{name}/start", s.startService)
	mux.HandleFunc("POST /v1/shutdown", s.shutdown)
	mux.HandleFunc("POST /v1/upgrade", s.upgrade)
	mux.HandleFunc("POST /v1/reload", s.reload)
	mux.HandleFunc("POST /v1/drain", s.drain)
	mux.HandleFunc("POST /v1/undrain", s.undrain)
	mux.HandleFunc("POST /v1/services/{name}/instances/{slot}/drain", s.drainInstance)
	mux.HandleFunc("POST /v1/services/{name}/instances/{slot}/undrain", s.undrainInstance)
	s.srv = httpstop.New(&http.Server{
		Handler: mux,
		// No WriteTimeout: a restart answers when its rollout ends, minutes
		// later maybe. The client is local and its own process bounds it.
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	return s
}

// Serve answers requests on ln until Shutdown or StopAccepting; it returns
// nil then, and the error that stopped it otherwise. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(ln)
}

// StopAccepting closes the listener Serve was given and the idle
// connections; every request on a connection already accepted is answered
// (and its connection closed after), until Shutdown. After an upgrade the
// replaced daemon calls it as soon as the new one is ready, so that every
// call from then on reaches the new one, although both hold the socket.
func (s *Server) StopAccepting() {
	s.srv.StopAccepting()
}

// Shutdown stops accepting, waits for the requests of the accepted
// connections until ctx is done, then closes every connection. Operations
// still running see their context cancelled.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Stop(ctx)
}

// status answers the daemon's status; ?usage=0 leaves out the instances'
// CPU and memory, and their scan of /proc.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	switch u := r.URL.Query().Get("usage"); u {
	case "", "1":
		writeJSON(w, http.StatusOK, s.d.Status())
	case "0":
		writeJSON(w, http.StatusOK, s.d.BriefStatus())
	default:
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: fmt.Sprintf("usage: want 0 or 1, got %q", u)})
	}
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.log.Info("control: restart", "service", name)
	rollouts, err := s.d.Restart(r.Context(), name, RestartTrigger)
	if err != nil {
		s.log.Warn("control: restart failed", "service", name, "err", err)
		writeJSON(w, StatusFor(err), api.ErrorBody{Error: err.Error(), Rollouts: rollouts})
		return
	}
	if rollouts == nil {
		rollouts = []*api.Rollout{}
	}
	writeJSON(w, http.StatusOK, api.RestartBody{Rollouts: rollouts})
}

func (s *Server) stopService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.log.Info("control: stop", "service", name)
	s.reply(w, s.d.StopService(r.Context(), name))
}

func (s *Server) startService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.log.Info("control: start", "service", name)
	s.reply(w, s.d.StartService(r.Context(), name))
}

func (s *Server) shutdown(w http.ResponseWriter, r *http.Request) {
	force, err := flag01(r.URL.Query().Get("force"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: "force: " + err.Error()})
		return
	}
	s.log.Info("control: shutdown", "force", force)
	s.d.Shutdown(force)
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	s.log.Info("control: reload")
	res, err := s.d.Reload(r.Context())
	if err != nil {
		s.log.Warn("control: reload failed", "err", err)
		writeJSON(w, StatusFor(err), api.ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) {
	s.log.Info("control: upgrade")
	pid, err := s.d.Upgrade(r.Context())
	if err != nil {
		s.log.Warn("control: upgrade failed", "err", err)
		writeJSON(w, StatusFor(err), api.ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, api.UpgradeResult{OldPid: os.Getpid(), NewPid: pid})
}

// reply answers an operation with no result: {} or its error.
func (s *Server) reply(w http.ResponseWriter, err error) {
	if err != nil {
		writeJSON(w, StatusFor(err), api.ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// StatusFor is the one place an operation's error becomes a status code
// (the control API's, and the admin page's).
func StatusFor(err error) int {
	switch {
	case errors.Is(err, api.ErrUnknownService):
		return http.StatusNotFound
	case errors.Is(err, api.ErrUnknownInstance):
		return http.StatusNotFound
	case errors.Is(err, api.ErrDisabled), errors.Is(err, api.ErrLastInstance), errors.Is(err, api.ErrNotAnswering):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// writeJSON writes v indented, for an operator reading it with curl.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(api.ErrorBody{Error: "encoding the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// drain drains the host: ?wait=1 waits until drained, ?timeout=DURATION
// bounds the drain.
func (s *Server) drain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	wait, err := flag01(q.Get("wait"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: "wait: " + err.Error()})
		return
	}
	var timeout time.Duration
	if v := q.Get("timeout"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout < 0 {
			writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: "timeout: want a duration such as 30s, got " + v})
			return
		}
	}
	s.log.Info("control: drain", "wait", wait, "timeout", timeout)
	st, err := s.d.Drain(r.Context(), wait, timeout)
	if err != nil {
		writeJSON(w, StatusFor(err), api.ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) undrain(w http.ResponseWriter, r *http.Request) {
	s.log.Info("control: undrain")
	writeJSON(w, http.StatusOK, s.d.Undrain())
}

func (s *Server) drainInstance(w http.ResponseWriter, r *http.Request) {
	name, slot, ok := instanceOf(w, r)
	if !ok {
		return
	}
	force, err := flag01(r.URL.Query().Get("force"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: "force: " + err.Error()})
		return
	}
	s.log.Info("control: drain", "instance", name+"#"+strconv.Itoa(slot), "force", force)
	s.reply(w, s.d.DrainInstance(r.Context(), name, slot, force))
}

func (s *Server) undrainInstance(w http.ResponseWriter, r *http.Request) {
	name, slot, ok := instanceOf(w, r)
	if !ok {
		return
	}
	s.log.Info("control: undrain", "instance", name+"#"+strconv.Itoa(slot))
	s.reply(w, s.d.UndrainInstance(r.Context(), name, slot))
}

// instanceOf reads the service name and slot of an instance route; a slot
// that is not a number gets 400.
func instanceOf(w http.ResponseWriter, r *http.Request) (name string, slot int, ok bool) {
	slot, err := strconv.Atoi(r.PathValue("slot"))
	if err != nil || slot < 0 {
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: "slot: want a number from 0, got " + r.PathValue("slot")})
		return "", 0, false
	}
	return r.PathValue("name"), slot, true
}

// flag01 reads a query flag: "" and "0" are false, "1" true.
func flag01(v string) (bool, error) {
	switch v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("want 0 or 1, got %s", v)
}
