// Package daemon is one smoothserve process: it owns the running
// configuration and the daemon's components (control API, supervisor,
// proxy, host, auto_restart, readiness), starts them, stops them, and
// releases them to the process that replaces it at an upgrade.
//
// Invariant: the running configuration has one owner, the Daemon, and
// changes one service at a time, only through Apply (a service's new
// settings: auto_restart, reload) or a reload adding or removing a service.
// What routes a service's hosts, on which proxy port, and what status
// shows of them are read from it, never kept apart. A service's new
// settings become the running ones when the rollout that carries them has
// succeeded; until then, and for good if it fails, the service stays as it
// was. Changing one service never changes another.
//
// The components are one ordered list (components.go): started in order,
// torn down in reverse, by stop (smoothserve stops: instances are stopped)
// or by release (an upgrade succeeded: the new process has the instances
// and is passed the connections). upgrade.go reads an upgrade top to
// bottom.
//
// Files: daemon.go sets the daemon up and runs it; components.go the
// components; apply.go Apply and the running configuration; reload.go
// smoothtool reload; upgrade.go replacing this process and becoming ready;
// ports.go the proxy listeners; pass.go the connections' side of an
// upgrade; control.go what the control API reaches; drain.go the host's
// drain (smoothtool drain), which it also owns: one state at a time
// (serving, draining, drained), kept in StateDir so that an upgrade or a
// restart of the daemon leaves a drained host drained; agent.go the agent
// port that tells HAProxy of it.
package daemon
