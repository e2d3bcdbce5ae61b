package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"smoothserve/control"
)

// Options is what the admin handler serves.
type Options struct {
	Daemon  control.Daemon // status and actions
	Users   []User         // who may act; none: the page is read-only
	Metrics http.Handler   // served at /metrics; nil: 404
	// Health says whether the host takes traffic, and its state's name:
	// GET /health answers 200 or 503 with it. nil: 404.
	Health func() (serving bool, state string)
	Logger *slog.Logger // nil discards
}

// User is one login: a name and the bcrypt hash of its password
// (`smoothtool hash-password` prints one).
type User struct {
	Name string
	Hash string
}

// readOnlyNote is what the page says, and a POST gets, without Users.
const readOnlyNote = "read-only: set AdminAuth to allow actions"

// handler serves one Options. Every field is set in newHandler (or by a
// test before routes) and read-only after; auth guards its own state.
type handler struct {
	d       control.Daemon
	auth    *authenticator // nil: read-only
	metrics http.Handler
	health  func() (bool, string)
	log     *slog.Logger
	page    func() *template.Template // parsed at the first page served
	now     func() time.Time
}

// New returns the admin listener's handler. A User whose Hash is not a
// bcrypt hash is logged and can never log in.
func New(o Options) http.Handler {
	return newHandler(o).routes()
}

func newHandler(o Options) *handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{
		d:       o.Daemon,
		auth:    newAuthenticator(o.Users, log),
		metrics: o.Metrics,
		health:  o.Health,
		log:     log,
		page:    pageTemplate,
		now:     time.Now,
	}
}

func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.servePage)
	mux.HandleFunc("GET /fragment", h.serveFragment)
	mux.HandleFunc("GET /api/status", h.serveStatus)
	mux.HandleFunc("GET /login", h.serveLogin)
	mux.HandleFunc("GET /metrics", h.serveMetrics)
	mux.HandleFunc("POST /api/services/{name}/restart", h.action("restart", h.restart))
	mux.HandleFunc("POST /api/services/{name}/stop", h.action("stop", h.stop))
	mux.HandleFunc("POST /api/services/{name}/start", h.action("start", h.start))
	mux.HandleFunc("POST /api/upgrade", h.action("upgrade", h.upgrade))
	// /health tells nothing a rebound name could steal, and a load
	// balancer's check often sends no Host (HAProxy's httpchk): it is
	// answered whatever the Host.
	outer := http.NewServeMux()
	outer.HandleFunc("GET /health", h.serveHealth)
	outer.Handle("/", loopbackHosts(h.remoteReaders(mux)))
	return secureHeaders(outer)
}

// serveHealth answers an outer load balancer's health check: 200 serving,
// or 503 with the host's state (draining, drained, stopping).
func (h *handler) serveHealth(w http.ResponseWriter, r *http.Request) {
	if h.health == nil {
		http.NotFound(w, r)
		return
	}
	ok, state := h.health()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	io.WriteString(w, state+"\n")
}

// loopbackHosts refuses, on a listener bound to a loopback address, a
// request whose Host is a name other than localhost: a web page the
// operator's browser opened could otherwise read the status and metrics
// through a DNS name rebound to 127.0.0.1 (actions need credentials
// anyway).
func loopbackHosts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := cameTo(r); ok && a.IsLoopback() && !localHost(r.Host) {
			http.Error(w, "this admin listener is on a loopback address: use it as localhost or by its IP", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// remoteReaders asks, when there are users, for the credentials of one of
// them before anything is read from another machine (a request that came
// to an address of the listener other than a loopback one): the status
// and the metrics say what runs here and how. From this machine, or
// without users (only on a loopback AdminAddr: --check refuses others),
// reading needs none. Actions check credentials themselves.
func (h *handler) remoteReaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := cameTo(r); ok && !a.IsLoopback() && h.auth != nil && r.Method != http.MethodPost {
			if _, ok := h.authenticate(w, r); !ok {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// cameTo is the address of the listener r came to; false when the request
// does not say (http.Server's always do), and then neither remoteReaders
// nor loopbackHosts acts: a handler served some other way is read-only
// for anyone who reaches it, as without users.
func cameTo(r *http.Request) (netip.Addr, bool) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(local.String())
	return ap.Addr(), err == nil
}

// localHost reports whether a Host field names this machine without DNS:
// an IP address or localhost, with or without a port.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// secureHeaders sets on every response what keeps the page from being
// framed (clickjacking an action button), sniffed or cached.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// serveStatus writes the daemon's status as the control socket does, so
// that it is what `smoothtool status --json` prints, byte for byte.
func (h *handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.d.Status())
}

func (h *handler) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if h.metrics == nil {
		http.NotFound(w, r)
		return
	}
	h.metrics.ServeHTTP(w, r)
}

// servePage writes the whole page; serveFragment its status part alone.
func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, "page")
}

func (h *handler) serveFragment(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, "status")
}

// render executes the named template for the request's viewer: anonymous,
// or the user its credentials name (wrong credentials get 401).
func (h *handler) render(w http.ResponseWriter, r *http.Request, name string) {
	user, ok := h.viewer(w, r)
	if !ok {
		return
	}
	v := newPageView(h.d.Status(), h.now())
	v.ReadOnly = h.auth == nil
	if user != "" {
		v.User, v.Token = user, h.auth.token(user)
	}
	v.Nonce = nonce()
	var buf bytes.Buffer
	if err := h.page().ExecuteTemplate(&buf, name, v); err != nil {
		h.log.Error("admin: rendering the page", "err", err)
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+v.Nonce+
		"'; style-src 'nonce-"+v.Nonce+"'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// viewer is who reads the page: "" without credentials (or without Users),
// else the user they name. Wrong credentials get 401 and ok false, so that
// a guess costs as much here as anywhere else and is logged the same.
func (h *handler) viewer(w http.ResponseWriter, r *http.Request) (user string, ok bool) {
	if h.auth == nil {
		return "", true
	}
	if _, _, given := r.BasicAuth(); !given {
		return "", true
	}
	return h.authenticate(w, r)
}

// serveLogin asks the browser for credentials until it sends valid ones,
// then sends it back to the page, which it then loads with them.
func (h *handler) serveLogin(w http.ResponseWriter, r *http.Request) {
	if h.auth == nil {
		writeJSON(w, http.StatusForbidden, result{Error: readOnlyNote})
		return
	}
	if _, ok := h.authenticate(w, r); !ok {
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// nonce is a fresh value for the page's Content-Security-Policy, which
// lets its own inline script and style run, and nothing else.
func nonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b) // in the page as is: no character html/template escapes
}

// result is every action's answer, and every refusal's.
type result struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// writeJSON writes v indented and newline-terminated, as the control
// server does.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(result{Error: "encoding the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
