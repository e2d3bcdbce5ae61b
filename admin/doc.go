// Package admin is the handler of smoothserve's admin listener
// (AdminAddr): a status page a person reads at a glance, the status JSON,
// the few actions an operator takes from a browser (restart, stop and start
// a service, upgrade smoothserve), and /metrics when the daemon passes a
// handler for it.
//
// Invariant: no GET (or HEAD) changes anything; a GET only reads
// (Daemon.Status, which has the instances' CPU and memory as the daemon
// measured them). With Options.Users, reading from another machine (a
// request that came to an address of the listener other than a loopback
// one) needs the credentials of one of them (401 otherwise), but for
// /health; from this machine, and without Users (--check allows that only
// on a loopback AdminAddr), reading needs none. An action is a POST, and
// it is carried out only when all three hold:
//
//   - credentials: HTTP Basic auth of one of Options.Users, checked against
//     its bcrypt hash (401 otherwise). Every failed attempt costs one
//     bcrypt comparison, an unknown user's too, and is logged with the
//     client's address. A client (an IPv4 address, an IPv6 /64) has at
//     most 4 checks going at once, which take turns; past that it gets
//     429, not logged and at no comparison's cost. A client's flood holds
//     up another client's check by one comparison. Without Users the
//     listener is read-only: the page says so and every POST gets 403.
//   - a CSRF token (header X-CSRF-Token, or form field csrf): an HMAC of the
//     user under a key drawn at random when the process starts, which the
//     page embeds only when it was loaded with that user's credentials (403
//     otherwise). A new process (an upgrade) makes the old tokens stale; the
//     page picks up the new one at its next refresh.
//   - the same origin: Origin, or without it Referer, names the host the
//     request was sent to (the Host header), and Sec-Fetch-Site, when the
//     browser sends it, is same-origin (403 otherwise).
//
// An action's answer is JSON {"ok": bool, "error": "...", "message": "..."};
// the page shows it. An action runs to its end even if the page that asked
// is closed (bounded by actionTimeout), unlike smoothtool's, which Ctrl-C
// cancels: reloading the page must not abort a rolling restart.
//
// The page never shows environment variables or executable paths: it
// renders the status fields it names (the instances' CPU and memory among
// them: api.InstanceStatus's CPUPercent and RSSBytes), and shortens any
// absolute path in a trigger or an error to its last element.
//
// Routes:
//
//	GET  /                             the status page (refreshes itself every 2 s)
//	GET  /fragment                     the page's status part, which the refresh fetches
//	GET  /api/status                   what `smoothtool status --json` prints: api.Status as the control
//	                                   socket sends it, byte for byte
//	GET  /login                        asks for credentials (401) until the browser has valid ones, then back to /
//	GET  /metrics                      Options.Metrics (404 without)
//	GET  /health                       200 "serving" or 503 with the host's drain state (Options.Health; 404
//	                                   without), whatever the Host: an outer load balancer's check
//	POST /api/services/{name}/restart  rolling restart
//	POST /api/services/{name}/stop     stop the service (its requests get 503 until started)
//	POST /api/services/{name}/start    start a stopped service
//	POST /api/upgrade                  replace smoothserve by its binary on disk
package admin
