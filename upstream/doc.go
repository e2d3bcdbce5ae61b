// Package upstream is the set of instances a service can route to, as the
// proxy sees them, and the pooled connections to each.
//
// Invariant: once a Backend starts draining (Drain or Down) it is never picked
// again, and its in-flight count only falls. Pick increments the count before
// it checks the drain flag and Drain sets the flag before it reads the count,
// so a request either sees the drain and goes elsewhere, or is counted and
// waited for: no request reaches an instance after WaitIdle returned. A
// tunnel (a WebSocket, after its 101) is not a request in flight: it stays
// open through the drain and ends when either side closes it, the
// instance's exit included.
//
// The request path takes no lock shared between services or instances: a Set
// publishes its rotation as an immutable slice behind an atomic pointer, and
// each Backend guards only its own idle-connection pool. A pooled
// connection is checked (a non-blocking peek) each time it is handed out,
// and every sweepEvery while idle: one the instance closed or wrote to
// while it was idle is never used, and leaves the pool within sweepEvery;
// one unused in the pool for idleTimeout is closed then too, so that the
// pool shrinks back to what the load uses after a burst.
// One idle for restAfter gives its read buffer back (the sweep does it:
// nothing on the request path), holding then its socket and a few hundred
// bytes; whoever takes it from the pool gets a buffer again. A connection
// in use gives its buffer back, empty, while it waits for the instance:
// for a request's answer (WriteRequest), a stream's next bytes (WaitBody)
// and a tunnel's (WaitReadable); it has one again when the wait ends.
package upstream
