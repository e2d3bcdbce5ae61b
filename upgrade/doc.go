// Package upgrade replaces the running smoothserve with a new process of
// the binary at the path it was started from, without closing a listening
// socket (github.com/cloudflare/tableflip): the new process inherits every
// proxy listener and the control socket, so no connection is refused and
// none waiting in a backlog is dropped.
//
// Invariants (tableflip's, kept here): at any time one or two smoothserve
// processes, at most one of them not ready; at most one upgrade under way;
// the pid file names the ready daemon (it is written by the new process
// when it is ready, and not touched by a failed upgrade).
package upgrade
