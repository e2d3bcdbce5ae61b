// Package client is smoothtool's side of smoothserve's control socket
// (package control is the daemon's): one HTTP/1.0 exchange a call over
// the unix socket, JSON both ways (package api).
//
// Why not net/http's client: smoothtool is a process started for every
// command, and a deploy runs one for each restart. net/http's client,
// with the TLS stack it links, cost each start about 4 ms of CPU on this
// project's machines (13.4-15.0 ms against 9.3-10.8 for a status call,
// 408 page faults against 290-334). The daemon's server is net/http's:
// it answers a request of HTTP/1.0 without chunking and closes the
// connection after, so an answer is its head, then its body up to its
// Content-Length or the close.
//
// Guarantees:
//
//   - A call is bounded by its context alone: a rolling restart can take
//     minutes. A context that ends closes the connection, and the daemon
//     cancels the operation (package control's guarantee); the call then
//     says the context's error.
//   - A daemon that is not there (no socket, one that refuses
//     connections, a path that is not a socket) is ErrNotRunning, with
//     what was found at the path.
//   - An error answer is an *APIError that errors.Is matches against
//     api's sentinels; an answer that is not HTTP, or a head or body
//     larger than any the daemon writes, is an error that says so and
//     names the socket.
//   - It links neither net/http nor anything of the daemon.
package client
