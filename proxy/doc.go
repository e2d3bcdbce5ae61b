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
//     WebSocket upgrades tunnel. An instance's answer to an HTTP/2 stream
//     is read by the same parser and body readers (h2response.go).
//   - Nothing an instance sends reaches another request: a connection to
//     an instance is reused only when its response ended exactly where its
//     framing said, and it is checked before each reuse.
//   - Nothing waits in a buffer while the proxy waits: bytes for the client
//     are flushed before any read that would block, on either side.
//   - Every failure becomes a status in one place (statusFor); the client
//     gets the status text, the log the details, under one request id.
//   - After Shutdown begins, every response carries Connection: close and
//     no connection is closed while a request on it is being answered,
//     nor, once one whose answer said keep-alive has ended, before its
//     client has read that answer and had ShutdownGrace to send its next
//     request (wait.go's graceWait; one that reads nothing for
//     ShutdownGrace is not waited for); tunnels (WebSockets) are not
//     waited for: their instances close them.
//     After PassConnections begins, a connection leaves between two
//     requests, a tunnel at once, and a response being streamed at its
//     next read from the instance (with where its body stands), each
//     with every byte read and not yet used, and nothing unflushed; its
//     responses say Connection: close only once passing it has failed.
//     Nothing is written to a connection once it is passed.
//   - A connection accepted is answered, also one its accept loop took as
//     Shutdown closed the listener, or whose TLS handshake ends after it
//     began (arrivals.go): Shutdown waits for them, and an HTTP/2 server
//     sends its GOAWAYs only once they have arrived and the newest has
//     had h2Settle to send its first request. Shutdown and draining send
//     every HTTP/2 connection RFC 9113 §6.8's first GOAWAY at once (stream
//     2^31-1: its client opens no stream more, and those on their way are
//     served; one that comes while draining, at its first request), and
//     net/http's, naming the last stream served, lastCall or more later
//     (h2goaway.go, rotate). A GOAWAY's last stream never goes up.
//   - A parked connection (park.go: an HTTP/1.x one, plain or TLS, idle
//     for 1–2 s, whose goroutine, buffers and scratch slices are given
//     back while the Server's parker watches its (TCP) descriptor, or one
//     another process passed between two requests with nothing read of
//     its next, parked as it arrives; or a tunnel quiet both ways for as
//     long, nothing buffered either way, whose two goroutines and readers
//     are given back while the parker watches both its descriptors,
//     tunnel.go; or a streamed response whose instance is quiet for as
//     long, its client's request bodiless and nothing from it since,
//     whose goroutine, buffers and instance reader are given back while
//     the parker watches both descriptors, its relay stopped where it
//     stands, streampark.go) has exactly one owner: the parker
//     while it is in the parked set, then whoever removed it (under the
//     parker's lock): its wake, the IdleTimeout sweep, Shutdown,
//     PassConnections, SetDraining, Close, or the closing of the longest
//     idle to make room when the process runs out of descriptors
//     (shed.go: an idle connection whose client sent nothing since). A parked tunnel is taken only
//     by its wake, PassConnections (passed as it is) and Close; it has no
//     IdleTimeout, and Shutdown leaves it to its instance. A parked stream
//     is taken only by its wake, PassConnections (a plain one, passed as
//     it is, from where it stands), the end of a stop's grace and Close;
//     it has no IdleTimeout, it stays in flight for its instance, and
//     Shutdown and SetDraining leave it as they leave one not parked. To
//     Shutdown a parked idle connection is an idle connection (taken up
//     again, it waits out the grace), to PassConnections a plain one is
//     one to pass as it is when its turn comes (not taken up again unless
//     passing it fails; one woken first passes itself) and a TLS one an
//     idle one, as to Shutdown; to Close it is an open one; its
//     descriptor leaves the epoll set before it is closed. IdleTimeout
//     counts from when it began idling here, parked or not (closed up to a
//     sweep late).
//   - While draining (SetDraining), every HTTP/1.x response says
//     Connection: close, a connection that has had a request is closed
//     rather than kept waiting for another (one waiting when draining
//     began gets lastCall to ask first), and every HTTP/2
//     connection, idle or not, gets its two GOAWAYs before it closes (a
//     stream opened after the first is not processed once the second
//     went, which tells its client to send it elsewhere); no request is
//     refused otherwise.
//
// The hot path parses into per-connection buffers that are reused from
// request to request and allocates nothing; the only lock it takes is the
// idle pool's of the instance it picked (upstream.Backend), held for a
// slice push or pop. The parker's lock is taken when a connection parks
// and when it wakes, once an idle period, not per request.
//
// Memory: an idle (parked) connection costs about 3 KiB, over TLS about
// 9 KiB (its tls.Conn: keys and read buffer), within a few seconds of
// idling — after a burst of parkings the parker runs two collections and
// returns free memory to the OS (park.go's trim), at most once every
// 10 s —, a quiet WebSocket tunnel holds no buffer (tunnel.go), and one
// quiet both ways for 1–2 s no goroutine either, about 5–7 KiB in all; a
// streamed response waiting for its instance (server-sent events) holds
// its goroutine, and neither the client's buffers nor its reader of the
// instance (relay.go's awaitBody, upstream's WaitBody), about 11 KiB, and
// once parked no goroutine either, about 6 KiB (over TLS, its TLS state
// besides); an instance connection pooled for a second gives its buffer
// back (upstream).
package proxy
