package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// hashCost is the bcrypt cost of `smoothtool hash-password`, and of the
// comparison for an unknown name when no user has a valid hash.
const hashCost = 12

// maxVerified bounds the cache of credentials found valid; past it the
// cache starts over.
const maxVerified = 256

// perClient bounds the credential checks of one client (clientAddr) at
// once: one compares, the others wait their turn; past it, 429. A flood of
// wrong passwords from one client then holds up the checks of others by
// one comparison, not by the whole flood.
const perClient = 4

// errBusy is a check refused because its client has perClient going.
var errBusy = errors.New("too many credential checks from this client at once")

// authenticator checks Basic credentials against bcrypt hashes and makes
// and checks CSRF tokens.
//
// Ownership: users, key, sem, dummy and log are set in newAuthenticator
// and read-only after; mu guards verified and clients (and each client's
// count).
type authenticator struct {
	users map[string][]byte // name → bcrypt hash
	key   []byte            // drawn per process: tokens and cache keys
	sem   chan struct{}     // bounds the bcrypt comparisons running at once
	dummy func() []byte     // a hash at the users' cost, for unknown names
	log   *slog.Logger

	mu       sync.Mutex
	verified map[[sha256.Size]byte]string // mac of name and password → name
	clients  map[string]*clientChecks     // by client address, while it has checks
}

// clientChecks are one client address's credential checks going on.
type clientChecks struct {
	n    int           // checking or waiting (under authenticator.mu)
	turn chan struct{} // held by the one comparing
}

// newAuthenticator returns nil for no users: read-only.
func newAuthenticator(users []User, log *slog.Logger) *authenticator {
	if len(users) == 0 {
		return nil
	}
	a := &authenticator{
		users:    make(map[string][]byte, len(users)),
		key:      make([]byte, 32),
		sem:      make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		log:      log,
		verified: make(map[[sha256.Size]byte]string),
		clients:  make(map[string]*clientChecks),
	}
	rand.Read(a.key)
	cost := -1 // the highest of the users' costs
	for i, u := range users {
		if _, dup := a.users[u.Name]; dup {
			log.Warn("admin: AdminAuth names a user twice: the first one counts", "user", u.Name)
			continue
		}
		c, err := bcrypt.Cost([]byte(u.Hash))
		if err != nil {
			log.Error("admin: AdminAuth: not a bcrypt hash (smoothtool hash-password makes one): this user cannot log in",
				"user", u.Name, "entry", i+1, "err", err)
		} else {
			cost = max(cost, c)
		}
		a.users[u.Name] = []byte(u.Hash)
	}
	if cost < 0 {
		cost = hashCost
	}
	a.dummy = sync.OnceValue(func() []byte { return dummyHash(cost) })
	return a
}

// dummyHash is a bcrypt hash of a random password at cost, for an unknown
// name's comparison to take as long as a known one's: a comparison's time
// is set by the cost in the hash it reads. It is made at the least cost
// (about 1 ms; at 12, 270 ms) and given cost's field: made at the first
// unknown name, it adds under 1% to that comparison, where making it at
// cost cost every process start (an upgrade is one) that much CPU. Which
// password it hashes does not matter: an unknown name never passes.
func dummyHash(cost int) []byte {
	pw := make([]byte, 32)
	rand.Read(pw)
	h, err := bcrypt.GenerateFromPassword([]byte(base64.RawStdEncoding.EncodeToString(pw)), bcrypt.MinCost)
	if err != nil {
		panic("admin: bcrypt at its least cost: " + err.Error()) // 44 bytes of password: cannot fail
	}
	// "$2a$04$" + salt and hash: the cost is bytes 4 and 5.
	return fmt.Appendf(h[:4:4], "%02d%s", cost, h[6:])
}

// verify reports whether the password is name's, for a request from
// client (its address). A failure costs one bcrypt comparison at the
// users' cost whether name is known or not; credentials once found valid
// are remembered (as a keyed hash), so that the page's refreshes do not
// each cost one. A client's checks take turns (errBusy past perClient).
func (a *authenticator) verify(ctx context.Context, client, name, password string) (bool, error) {
	mac := a.mac(name, password)
	if a.known(mac) {
		return true, nil
	}
	done, err := a.takeTurn(ctx, client)
	if err != nil {
		return false, err
	}
	defer done()
	if a.known(mac) { // the check before this one's, of the same credentials
		return true, nil
	}
	select {
	case a.sem <- struct{}{}:
		defer func() { <-a.sem }()
	case <-ctx.Done():
		return false, ctx.Err()
	}
	hash, known := a.users[name]
	if !known {
		hash = a.dummy()
	}
	err = bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !known || err != nil {
		return false, nil
	}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[mac] = name
	a.mu.Unlock()
	return true, nil
}

// known reports whether mac's credentials were found valid before.
func (a *authenticator) known(mac [sha256.Size]byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.verified[mac]
	return ok
}

// takeTurn waits for client's turn to check credentials; done ends it.
// errBusy when client has perClient checks going already.
func (a *authenticator) takeTurn(ctx context.Context, client string) (done func(), err error) {
	a.mu.Lock()
	c := a.clients[client]
	if c == nil {
		c = &clientChecks{turn: make(chan struct{}, 1)}
		a.clients[client] = c
	}
	if c.n >= perClient {
		a.mu.Unlock()
		return nil, errBusy
	}
	c.n++
	a.mu.Unlock()
	leave := func() {
		a.mu.Lock()
		if c.n--; c.n == 0 {
			delete(a.clients, client)
		}
		a.mu.Unlock()
	}
	select {
	case c.turn <- struct{}{}:
		return func() { <-c.turn; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// mac is the cache key of a name and password: length-prefixed, so that no
// two pairs share it.
func (a *authenticator) mac(name, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte("login\x00"))
	binary.Write(m, binary.BigEndian, uint64(len(name)))
	m.Write([]byte(name))
	m.Write([]byte(password))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// token is user's CSRF token in this process.
func (a *authenticator) token(user string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte("csrf\x00"))
	m.Write([]byte(user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validToken reports whether got is user's token, in constant time.
func (a *authenticator) validToken(user, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(a.token(user)))
}

// authenticate checks the request's Basic credentials and returns the
// user; missing or wrong ones get 401 with a challenge, and wrong ones are
// logged with the client's address.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	name, password, given := r.BasicAuth()
	if !given {
		h.challenge(w, "credentials required")
		return "", false
	}
	ok, err := h.auth.verify(r.Context(), clientAddr(r), name, password)
	if errors.Is(err, errBusy) {
		// Not logged: the refusals cost the sender nothing, and its
		// failed logins, a comparison each, are.
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, result{Error: errBusy.Error()})
		return "", false
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, result{Error: "checking credentials: " + err.Error()})
		return "", false
	}
	if !ok {
		h.log.Warn("admin: failed login", "user", name, "client", r.RemoteAddr)
		h.challenge(w, "wrong user or password")
		return "", false
	}
	return name, true
}

// clientAddr is who r came from, as the per-client bound counts clients:
// its IPv4 address, or the /64 of its IPv6 one (one host's, or one
// network's: a host is given a /64 to pick addresses from).
func clientAddr(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

func (h *handler) challenge(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="smoothserve admin", charset="UTF-8"`)
	writeJSON(w, http.StatusUnauthorized, result{Error: msg})
}

// maxForm bounds the body of an action: a form with the token at most.
const maxForm = 4 << 10

// authorize lets an action through, returning its user, or answers it:
// 403 read-only, 401 without valid credentials, 403 from another origin or
// without the user's token.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	if h.auth == nil {
		writeJSON(w, http.StatusForbidden, result{Error: readOnlyNote})
		return "", false
	}
	user, ok := h.authenticate(w, r)
	if !ok {
		return "", false
	}
	if err := sameOrigin(r); err != nil {
		h.log.Warn("admin: action refused", "user", user, "client", r.RemoteAddr, "err", err)
		writeJSON(w, http.StatusForbidden, result{Error: err.Error()})
		return "", false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		got = r.PostFormValue("csrf")
	}
	if !h.auth.validToken(user, got) {
		h.log.Warn("admin: action refused: no valid CSRF token", "user", user, "client", r.RemoteAddr)
		writeJSON(w, http.StatusForbidden, result{Error: "missing or stale CSRF token: reload the page"})
		return "", false
	}
	return user, true
}

// sameOrigin checks that a request comes from a page of this server: its
// Origin (or, without one, its Referer) names the host it was sent to, and
// Sec-Fetch-Site, if the browser sent it, says same-origin.
func sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("cross-origin request refused (Sec-Fetch-Site: %s)", site)
	}
	from, header := r.Header.Get("Origin"), "Origin"
	if from == "" {
		from, header = r.Header.Get("Referer"), "Referer"
	}
	if from == "" {
		return errors.New("no Origin or Referer header: send Origin: http://" + r.Host)
	}
	u, err := url.Parse(from)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("cross-origin request refused (%s: %q)", header, from)
	}
	if !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("cross-origin request refused (%s: %s, Host: %s)", header, u.Scheme+"://"+u.Host, r.Host)
	}
	return nil
}
