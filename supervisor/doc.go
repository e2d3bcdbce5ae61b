// Package supervisor starts the instances of every enabled service, keeps
// them running, and puts each one into its service's upstream.Set while, and
// only while, it can take requests.
//
// Invariant: a Backend is in rotation only while its process runs and has
// answered the readiness check; it leaves rotation before its process is
// signalled (a drain), and at once when the process exits on its own (a
// crash). Every Backend serves one process lifetime and is never reused.
// Every process the supervisor starts is reaped, and its process group
// killed, before Run returns.
//
// Structure, so that rollouts and adoption (next issues) fit in:
//
//   - Supervisor (supervisor.go) is a group of services; Run runs one owner
//     goroutine per enabled service and returns when they all have.
//   - service (service.go) owns its slots: which instance serves each
//     slot, restart counts and backoff. Its run goroutine is the only one
//     that changes them; instances report to it over a channel, and it
//     publishes what Status shows as an immutable snapshot.
//   - instance (instance.go) is one process lifetime on one port: start
//     and wait until ready (a function returning an error), join rotation,
//     then either be lost or be drained and stopped. Its goroutine always
//     ends by reporting that it exited, after the process is reaped.
//   - process (process.go) is the OS process behind an instance: today a
//     child reaped with Wait; later also an adopted one watched by pidfd.
//
// Instances run in their own process group without a parent-death signal,
// so they outlive a crash of smoothserve; their output goes straight to a
// log file per service, never through smoothserve.
package supervisor
