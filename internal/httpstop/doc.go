// Package httpstop serves an http.Server on one listener and stops it so
// that every request on a connection it accepted is answered.
//
// net/http's Server.Shutdown does not keep that promise: it closes, without
// an answer, a connection whose request it reads after Shutdown began,
// including one it had accepted before (conn.serve returns when the server
// is shutting down). At an upgrade the old smoothserve stops serving a
// listener that the new one keeps accepting on, so a client that connected
// just before the stop (a load balancer's /health check, a smoothtool call)
// met EOF, and nobody else was going to answer it.
//
// Guarantees:
//   - After StopAccepting, the listener is closed in this process and no
//     connection is accepted any more; each connection closes after its
//     next answer, which says Connection: close if its head is written
//     from then on, and idle ones close at once. A connection that waits
//     for its first request is not idle, however long it has waited
//     (net/http's SetKeepAlivesEnabled(false) closes it after 5 s).
//   - Stop answers the request of every connection accepted before it, one
//     whose request has not even arrived yet included, until its context
//     ends; then it closes whatever is left, as Server.Close does.
//     Hijacked connections are the handler's. A Stop after one that ran
//     out of time returns at once.
//   - Handlers get a ResponseWriter that wraps net/http's: http.Flusher
//     directly, anything else through http.ResponseController.
//   - Stop and StopAccepting may be called more than once, in any order,
//     and before Serve: a Serve after them closes its listener and returns
//     nil.
package httpstop
