package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Low is the first port handed out: well above the well-known and the
// usual registered ports.
const Low = 10000

// EphemeralLow is the first port of the ephemeral range; 32768 where the
// range cannot be read or starts too low to leave room below it.
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low < 12000 {
		return 32768
	}
	return low
}

// Free reports whether nothing listens on 127.0.0.1 at ports base to
// base+n-1 now.
func Free(base, n int) bool {
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// Range finds n consecutive free ports, at a random place below the
// ephemeral range, and returns the first.
func Range(n int) (int, error) {
	high := EphemeralLow()
	for tries := 0; tries < 200; tries++ {
		if base := Low + rand.IntN(high-Low-n); Free(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d free consecutive ports", n)
}
