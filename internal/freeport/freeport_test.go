package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestRangeIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	base, err := Range(4)
	if err != nil {
		t.Fatal(err)
	}
	if high := EphemeralLow(); base < Low || base+4 > high {
		t.Errorf("got ports %d to %d, want them in [%d, %d)", base, base+3, Low, high)
	}
	for p := base; p < base+4; p++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d of the range: %v", p, err)
		}
		ln.Close()
	}
}

func TestFreeSeesAListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if Free(port, 1) {
		t.Errorf("Free(%d, 1) = true with a listener on it, want false", port)
	}
}
