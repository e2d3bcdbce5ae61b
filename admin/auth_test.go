package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// An unknown name is compared against a hash at the users' cost (so that
// it takes as long as a known name's comparison), made without paying
// that cost at start, and never matches.
func TestDummyHashAtTheUsersCost(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, 10, hashCost, 14} {
		h := dummyHash(cost)
		got, err := bcrypt.Cost(h)
		if err != nil || got != cost {
			t.Fatalf("dummyHash(%d) = %q: cost %d, %v; want cost %d", cost, h, got, err, cost)
		}
		if cost > hashCost {
			continue // a comparison at 14 takes a second
		}
		if err := bcrypt.CompareHashAndPassword(h, []byte("password")); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			t.Errorf("comparing with dummyHash(%d): %v, want a mismatch (a well-formed hash)", cost, err)
		}
	}
}

// TestAFloodOfWrongPasswordsHoldsUpOnlyItsSender: the bcrypt comparisons
// run one or two at a time, in the order asked. A flood of wrong passwords
// from one address used to queue every other client's first check behind
// all of it (a Prometheus scraping from another machine, after an upgrade
// emptied the cache); now an address has perClient checks at most, one
// comparing, and the rest of its flood gets 429 at once.
func TestAFloodOfWrongPasswordsHoldsUpOnlyItsSender(t *testing.T) {
	const password = "a password at cost 8"
	h, err := bcrypt.GenerateFromPassword([]byte(password), 8)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	hd := newHandler(Options{Daemon: e.d, Users: []User{{Name: "carol", Hash: string(h)}}, Logger: slog.New(slog.DiscardHandler)})
	e.h = hd.routes()
	get := func(from, pw string) *http.Response {
		r := httptest.NewRequest("GET", "http://admin.test/api/status", nil)
		r.RemoteAddr = from
		r.SetBasicAuth("carol", pw)
		res, _ := e.do(arriving(r, "192.0.2.10:9180"))
		return res
	}
	// One comparison's time, from an address of its own.
	t0 := time.Now()
	if res := get("198.51.100.9:5000", "wrong"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %s, want 401", res.Status)
	}
	one := time.Since(t0)

	const flood = 40
	codes := make(chan int, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() { codes <- get(fmt.Sprintf("192.0.2.66:%d", 10000+i), "wrong").StatusCode })
	}
	// Once the flood holds its address's places, a client elsewhere
	// waits for one comparison of the flood's at most, then its own.
	auth := hd.auth
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		auth.mu.Lock()
		c := auth.clients["192.0.2.66"]
		full := c != nil && c.n >= 2 // one comparing, one waiting at least
		auth.mu.Unlock()
		if full {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flood never had two checks going")
		}
	}
	t0 = time.Now()
	res := get("203.0.113.5:6000", password)
	took := time.Since(t0)
	wg.Wait()
	close(codes)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the right password from elsewhere during the flood: %s, want 200", res.Status)
	}
	if took > 10*one {
		t.Errorf("the right password from elsewhere took %v during the flood, one comparison %v: it waited for the flood", took, one)
	}
	byCode := map[int]int{}
	for c := range codes {
		byCode[c]++
	}
	if byCode[http.StatusTooManyRequests] < flood/2 || byCode[http.StatusUnauthorized]+byCode[http.StatusTooManyRequests] != flood {
		t.Errorf("the flood's answers by status: %v; want 401 or 429 each, and 429 for most", byCode)
	}
	if got := auth.clients; len(got) != 0 {
		t.Errorf("clients left with checks going after the flood: %v", got)
	}
}

func TestClientAddr(t *testing.T) {
	for from, want := range map[string]string{
		"192.0.2.7:5000":              "192.0.2.7",
		"[::ffff:192.0.2.7]:5000":     "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:5000": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:6000": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:5000":      "2001:db8:1:3::/64",
		"[::1]:5000":                  "::/64",
		"not an address":              "not an address",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = from
		if got := clientAddr(r); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", from, got, want)
		}
	}
}
