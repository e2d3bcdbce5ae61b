// Package supervisor starts the instances of every enabled service, keeps
// them running, and puts each one into its service's upstream.Set while, and
// only while, it can take requests.
//
// Invariant: a Backend is in rotation only while its process runs and has
// answered the readiness check (an instance adopted at an upgrade, which
// the process handing over had in rotation, answered that process's); it
// leaves rotation before its process is signalled (a drain), and at once
// when the process exits on its own (a crash). Every Backend serves one
// process lifetime and is never reused; a process that leaves rotation
// for failing its health check after start comes back with a new Backend.
// A service never has all its running instances out of rotation for
// failing health checks. A slot the operator drained (drain.go) keeps
// every instance it starts out of rotation until undrained; the last slot
// that serves is drained only when forced.
// Every process the supervisor starts is reaped, and its process group
// killed, before Run returns, unless Detach handed it over to the next
// smoothserve.
//
// A slot's counts (restarts by reason, requests answered) never go back
// while its service exists in this smoothserve: they outlive the slot's
// processes, a stop of the service and the slot itself. After an upgrade
// they go on from the previous smoothserve's once GoOnFrom has them
// (counts.go).
//
// A service has at most one rollout under way. A surge rollout takes a
// slot's old instance out of rotation only once its replacement is in it:
// replacing instances never lowers the number in rotation.
//
// Structure:
//
//   - Supervisor (supervisor.go) is a group of services; Run runs one owner
//     goroutine per enabled service and returns when they all have. A
//     reload adds and removes services while it runs (services.go).
//   - service (service.go) owns its slots: which instance serves each
//     slot, restart counts and backoff. Its run goroutine is the only one
//     that changes them; instances report to it over a channel, operator
//     commands (commands.go) and rollouts reach it with calls, and it
//     publishes what Status shows as an immutable snapshot.
//   - instance (instance.go) is one process lifetime on one port: start
//     or adopt a process and wait until it is ready (a function returning
//     an error), join rotation, then either be lost or be drained and
//     stopped. Its goroutine always ends by reporting that it exited,
//     after the process is reaped (or let go, after Detach).
//   - What each slot counted (counts.go): restarts by reason and
//     requests answered, kept by the service's run goroutine for every
//     slot it has had, with the previous smoothserve's counts (GoOnFrom)
//     added; Status and Counts (the metrics, and what an upgrade hands
//     over) read them there.
//   - Draining one slot (drain.go): the operator's wish, on the slot,
//     carried to each instance's rotation and, through the state file, to
//     the next smoothserve.
//   - Health checks after start (health.go): a checker goroutine per ready
//     instance reports to the service's run goroutine, which takes
//     unhealthy instances out of rotation while a healthy one is in it
//     (balance), puts them back when they pass, and replaces one unhealthy
//     for too long as if it had crashed; the instance's rotation applies
//     this to the upstream.Set.
//   - process (process.go) is the OS process behind an instance: a child
//     this smoothserve started, whose exit is waited for through a pidfd
//     in the runtime's poller (package pidfd) and then reaped with Wait,
//     or one adopted from an earlier smoothserve (package handoff),
//     watched through a pidfd likewise. No thread waits blocked for an
//     instance.
//   - A rollout (rollout.go) runs on a goroutine of its own and replaces
//     a service's instances slot by slot (replace.go): surging, each
//     replacement starts on the other port of its slot's pair (ports.go)
//     and the old instance is drained once it is ready; in place, the old
//     instance stops first. A rollout also applies new settings, adding or
//     dropping slots.
//   - The handoff (handoff.go) keeps a state file listing every instance;
//     a later smoothserve, after an upgrade or a crash of this one, adopts
//     the instances that are verifiably the processes it lists instead of
//     starting new ones (StopLeftovers stops those it has no slot for).
//     Freeze holds every instance as it is while an upgrade hands over,
//     and writes each one's state as it is: the new process puts those
//     that were ready into rotation without asking them again. The file
//     is written only when what it says changes.
//
// Instances run in their own process group without a parent-death signal,
// so they outlive a crash of smoothserve, and the next one adopts them;
// their output goes straight to a log file per service, never through
// smoothserve. What the supervisor opens (a start's exec, the probes) asks
// for room when the process is out of descriptors (SetMakeRoom: the
// proxy closes idle connections) and is tried again.
package supervisor
