// Package tcptest makes real TCP connections on 127.0.0.1 for the tests of
// the packages that pass, pool and serve them, and reads the head of what
// a client sent over one (ReadHead), and listening sockets that several
// servers accept on at once, handed over from one to the next as at an
// upgrade (Shared, HandOvers), with clients that call again and again
// meanwhile and count what failed (Clients).
//
// Invariant: everything it opens is closed when the test ends.
package tcptest
