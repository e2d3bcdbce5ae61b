// Package daemon is one smoothserve process: it owns the running
// configuration and the daemon's components (proxy listeners, proxy,
// supervisor, auto_restart, control API, upgrader), starts them, stops
// them, and hands them over to the process that replaces it at an upgrade.
//
// Invariant: the running configuration has one owner, the Daemon, and one
// way to change: Apply, per service. What routes a service's hosts, on
// which proxy port, and what status shows of them are read from it, never
// kept apart. A service's new settings become the running ones when the
// rollout that carries them has succeeded; until then, and for good if it
// fails, the service stays as it was. Applying one service's settings
// never changes another's.
//
// Files: daemon.go sets the daemon up and runs it; apply.go is Apply and
// the running configuration; ports.go the proxy listeners; control.go what
// the control API reaches; pass.go the connections' side of an upgrade.
package daemon
