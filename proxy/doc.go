// Package proxy is smoothserve's HTTP/1.1 reverse proxy: it reads requests
// from clients, routes them by port and Host to a service's upstream.Set,
// and relays them to one of its instances over pooled keep-alive
// connections.
//
// Invariants:
//   - A response reaches the client only once: a request is retried on
//     another instance only while nothing of its response has been sent,
//     and only when resending cannot do harm (nothing was sent, or the
//     request is idempotent and its whole body was kept).
//   - Every upstream failure becomes a status in one place (statusFor).
//   - After Shutdown begins, every response carries Connection: close and
//     no connection is closed while a request on it is being answered.
//     After HandOver begins, a connection leaves only between two requests,
//     with its unanswered bytes and nothing unflushed; its responses say
//     Connection: close only once passing it has failed.
//
// The hot path parses into per-connection buffers that are reused from
// request to request, and takes no lock shared by connections.
package proxy
