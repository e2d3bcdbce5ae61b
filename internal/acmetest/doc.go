// Package acmetest runs a local ACME CA for tests: pebble, with
// pebble-challtestsrv as its DNS server, both the versions pinned as tools
// in go.mod. Nothing it starts needs or touches the internet.
//
// Start gives a test an ACME directory URL, the root its HTTPS listener is
// signed by (what an ACME client must trust), and the root the
// certificates it issues chain to (what a client of the served site must
// trust). Pebble's validation authority resolves every name to 127.0.0.1
// and connects to Options.HTTPPort for HTTP-01 and Options.TLSPort for
// TLS-ALPN-01, so the code under test answers challenges on those ports.
//
// Invariants:
//   - every process it starts is one it built or located itself, is
//     signalled only by its own pid, and is stopped when the test ends
//     (and killed by the kernel if the test process dies first, on Linux);
//   - everything it listens on is a free port on 127.0.0.1 below the
//     ephemeral range (see internal/freeport);
//   - both processes' output goes to files in the test's temporary
//     directory, and is copied into the test log when the test fails;
//   - Orders and Issued count from pebble's log, and pebble writes a line
//     before the order it reports on is visible to the client, so a count
//     taken after a client call returns includes that call's effect.
package acmetest
