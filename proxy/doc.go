// Package proxy is smoothserve's HTTP/1.1 reverse proxy: it reads requests
// from clients, routes them by port and Host to a service's upstream.Set,
// and relays them to one of its instances over pooled keep-alive
// connections.
//
// Invariants:
//   - A response reaches the client only once: a request is retried on
//     another instance only while nothing of its response has been sent,
//     and only when resending cannot do harm (nothing was sent, or the
//     request is idempotent and its whole body was kept). A pooled
//     connection the instance closed is not the instance's failure: the
//     request goes again on a new connection, under the same rule.
//   - What is forwarded can be read one way only. A request or response
//     head that two parsers could read differently (bare CR, control
//     characters, obs-fold, two lengths, length and chunked) is refused,
//     never passed on; what passes is re-emitted canonically (CRLF, one
//     framing of the proxy's own, hop-by-hop fields removed). Only
//     WebSocket upgrades tunnel.
//   - Nothing an instance sends reaches another request: a connection to
//     an instance is reused only when its response ended exactly where its
//     framing said, and it is checked before each reuse.
//   - Nothing waits in a buffer while the proxy waits: bytes for the client
//     are flushed before any read that would block, on either side.
//   - Every failure becomes a status in one place (statusFor); the client
//     gets the status text, the log the details, under one request id.
//   - After Shutdown begins, every response carries Connection: close and
//     no connection is closed while a request on it is being answered;
//     tunnels (WebSockets) are not waited for: their instances close them.
//     After PassConnections begins, a connection leaves between two
//     requests, a tunnel at once, and a response being streamed at its
//     next read from the instance (with where its body stands), each
//     with every byte read and not yet used, and nothing unflushed; its
//     responses say Connection: close only once passing it has failed.
//     Nothing is written to a connection once it is passed.
//
// The hot path parses into per-connection buffers that are reused from
// request to request and allocates nothing; the only lock it takes is the
// idle pool's of the instance it picked (upstream.Backend), held for a
// slice push or pop.
package proxy
