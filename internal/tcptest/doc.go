// Package tcptest makes real TCP connections on 127.0.0.1 for the tests of
// the packages that pass, pool and serve them, and reads the head of what
// a client sent over one (ReadHead).
//
// Invariant: everything it opens is closed when the test ends.
package tcptest
