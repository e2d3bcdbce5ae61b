// Package pidfd waits for a process to exit in the runtime's poller,
// through a pidfd (Linux 5.3 and later): the waiting goroutine is parked,
// and no thread is blocked in wait(2) or poll(2) for it.
//
// Why not a blocking wait: a goroutine in a blocking system call holds an
// OS thread for as long as the process lives, and keeps the runtime's
// monitor (sysmon) waking every 20 µs, then less often, until it takes the
// thread's processor some 10 ms later: about sixty wake-ups each time a
// process starts, which on a virtual machine cost as much as the rest of
// a supervisor's work for that start.
//
// Invariant: a File refers to the one process it was opened for, even
// after that process's pid is reused (a pidfd cannot come to name another
// process); Wait returns nil only once that process has exited. Whether
// pid named the intended process when Open was called is the caller's to
// know: its parent has not reaped it, or the caller checks it after the
// open (handoff.Verify).
package pidfd
