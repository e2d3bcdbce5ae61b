// Package leafcheck says what stops a server certificate from being served
// for a service's names: not in force, or not covering one of them.
//
// Invariant: it is the one such check. `smoothserve --check` (package
// config) and the watcher of `tls: files` pairs (package certs) both call
// Problems, so as far as dates and names go, a pair the daemon swaps in is
// one --check accepts, and a pair --check rejects is kept out by the
// daemon for the same reason, in the same words.
package leafcheck
