// Package loadclient is a strict HTTP/1.1 load generator for end-to-end
// tests, to judge "zero lost requests" the way wrk does.
//
// It keeps Config.Conns persistent connections, each driven by its own
// goroutine, and sends the demo service's requests on them (see Kind). Any
// service that answers them as the demo does can be judged too, with
// Config.Hello naming it (examples/node). It speaks HTTP/1.1 over a raw
// net.Conn (with Config.TLS, a tls.Conn over it, ALPN http/1.1) rather than
// through net/http's Transport, which silently retries a request that failed
// on a reused connection and so would hide exactly the failures a test looks
// for.
//
// The guarantee: every request sent is judged exactly once, as OK or Failed,
// and never retried, so Total == OK + Failed. A request fails on any dial,
// TLS handshake, write or read error, a timeout, a status outside 2xx, or a
// body other than the one its Kind expects. A response with
// "Connection: close" is not a failure: the connection is closed and the
// next request opens a new one, as wrk does. Ending a run (ctx done, Stop,
// Count or Duration reached) stops new requests; the ones in flight are
// completed and judged, never abandoned, so Stop returns within
// Config.Timeout.
package loadclient
