package certs

import "testing"

// HTTPChallenge builds its request with httptest.NewRequest, which panics
// on a target it cannot parse; the target is the client's. A panic in a
// proxy connection's goroutine (there is no recover) ends the daemon.
func TestRegressHTTPChallengeDoesNotPanicOnABadTarget(t *testing.T) {
	m := newManager(t)
	for _, target := range []string{"/.well-known/acme-challenge/%zz", "/.well-known/acme-challenge/a%"} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("HTTPChallenge(%q) panicked: %v", target, r)
				}
			}()
			m.HTTPChallenge("a.test", target)
		}()
	}
}
