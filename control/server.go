package control

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"smoothserve/control/api"
)

// Server serves the control API for one Daemon.
//
// Ownership: d, log and srv are set in NewServer and read-only after; the
// http.Server guards its own connections; mu guards ln and stopped.
type Server struct {
	d   Daemon
	log *slog.Logger
	srv *http.Server

	mu      sync.Mutex
	ln      net.Listener // what Serve was given
	stopped bool         // StopAccepting was called
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
	s.srv = &http.Server{
		Handler: mux,
		// No WriteTimeout: a restart answers when its rollout ends, minutes
		// later maybe. The client is local and its own process bounds it.
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Serve answers requests on ln until Shutdown or StopAccepting; it returns
// nil then, and the error that stopped it otherwise. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	err := s.srv.Serve(ln)
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if errors.Is(err, http.ErrServerClosed) || (stopped && errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// StopAccepting closes the listener Serve was given and the idle
// connections; requests in progress go on (each connection closes after
// its response), until Shutdown. After an upgrade the replaced daemon
// calls it as soon as the new one is ready, so that every call from then
// on reaches the new one, although both hold the socket.
func (s *Server) StopAccepting() {
	s.srv.SetKeepAlivesEnabled(false) // closes the idle connections too
	s.mu.Lock()
	s.stopped = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// Shutdown stops accepting, waits for requests in progress until ctx is
// done, then closes every connection. Operations still running see their
// context cancelled.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.d.Status())
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.log.Info("control: restart", "service", name)
	rollouts, err := s.d.Restart(r.Context(), name, RestartTrigger)
	if err != nil {
		s.log.Warn("control: restart failed", "service", name, "err", err)
		writeJSON(w, StatusFor(err), errorBody{Error: err.Error(), Rollouts: rollouts})
		return
	}
	if rollouts == nil {
		rollouts = []*api.Rollout{}
	}
	writeJSON(w, http.StatusOK, restartBody{Rollouts: rollouts})
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
	force := r.URL.Query().Get("force")
	if force != "" && force != "0" && force != "1" {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "force: want 0 or 1, got " + force})
		return
	}
	s.log.Info("control: shutdown", "force", force == "1")
	s.d.Shutdown(force == "1")
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	s.log.Info("control: reload")
	res, err := s.d.Reload(r.Context())
	if err != nil {
		s.log.Warn("control: reload failed", "err", err)
		writeJSON(w, StatusFor(err), errorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) {
	s.log.Info("control: upgrade")
	pid, err := s.d.Upgrade(r.Context())
	if err != nil {
		s.log.Warn("control: upgrade failed", "err", err)
		writeJSON(w, StatusFor(err), errorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, api.UpgradeResult{OldPid: os.Getpid(), NewPid: pid})
}

// reply answers an operation with no result: {} or its error.
func (s *Server) reply(w http.ResponseWriter, err error) {
	if err != nil {
		writeJSON(w, StatusFor(err), errorBody{Error: err.Error()})
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
	case errors.Is(err, api.ErrDisabled):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// writeJSON writes v indented, for an operator reading it with curl.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: "encoding the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
