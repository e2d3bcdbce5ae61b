package admin

import (
	"errors"
	"testing"

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
