// Package control is smoothserve's control channel: an HTTP+JSON API on a
// unix socket, and the server the daemon runs. smoothtool's side is
// package control/client, which links neither this package nor net/http.
//
// Guarantees:
//
//   - The socket is never reachable by anyone but its owner (and root): it
//     is created under umask 0177, so there is no moment at which it is
//     wider than 0600, and chmodded to 0600 after.
//   - One daemon per socket: Listen refuses a path where another daemon
//     answers, replaces a stale socket (one that refuses connections), and
//     refuses a path that is not a socket at all. Closing the listener
//     removes the socket only if it is still the one Listen made, so a
//     daemon that lost its path to a successor does not remove the
//     successor's.
//   - One daemon answers at a time: after an upgrade both processes hold
//     the socket, and the replaced daemon calls StopAccepting as soon as
//     the new one is ready (before its answer to the upgrade), so every
//     call from then on reaches the new one.
//   - A long operation (restart, stop, start of a service) runs with the
//     request's context: a client that goes away cancels it. The server
//     has no write timeout, since a rolling restart can take minutes.
//   - Errors are JSON {"error": "..."} (api.ErrorBody): 404 for an unknown
//     service, 409 for a disabled one, 400 for a malformed request, 500 for
//     anything else. The client (package control/client) turns them back
//     into errors that errors.Is matches against api's sentinels (the
//     supervisor's are the same values), and reports a daemon that is not
//     there as ErrNotRunning.
//   - What crosses the socket is defined in package api, which imports
//     nothing of smoothserve: a client (smoothtool) links neither the
//     supervisor nor what it runs on.
//
// Routes (Go 1.22 ServeMux patterns):
//
//	GET  /v1/status?usage=0           api.Status; usage=0: without the instances' CPU and memory
//	POST /v1/services/{name}/restart  {"rollouts": [api.Rollout...]}; name may be "all"
//	POST /v1/services/{name}/stop     {}; returns when its instances are stopped
//	POST /v1/services/{name}/start    {}; name may be "all"; returns when ready
//	POST /v1/shutdown?force=1         {}; returns at once, the daemon stops after
//	POST /v1/upgrade                  api.UpgradeResult; returns when the new daemon is ready, or why it failed
//	POST /v1/reload                   api.ReloadResult; applies the configuration on disk, returns when done
//	POST /v1/drain?wait=1&timeout=D   api.HostStatus; drains the host (with wait, returns once drained)
//	POST /v1/undrain                  api.HostStatus; the host serves again
//	POST /v1/services/{name}/instances/{slot}/drain?force=1
//	                                  {}; takes the instance out of rotation (409 for the last one, without force)
//	POST /v1/services/{name}/instances/{slot}/undrain
//	                                  {}; puts it back once it answers its readiness check (409 if it does not)
package control
