// Package handoff lets a new smoothserve daemon adopt the service instances
// an earlier daemon started, instead of starting duplicates, after an
// upgrade (tableflip: the old daemon forks the new one and exits) or after
// the old daemon was killed.
//
// It owns three things: the format of the state file the daemon keeps
// (Write, Read), the check that a recorded pid still names the recorded
// process (Identify, Verify), and the watch of an adopted process through a
// pidfd (Adopt), since the new daemon is not its parent and cannot wait(2)
// for it.
//
// Invariant: a pid is acted on only as the process recorded for it. A
// process is identified by pid and start time (/proc/PID/stat field 22),
// which together never name two processes during one boot, and its
// executable; Adopt opens a pidfd first and verifies second, so the pidfd
// it keeps refers to the recorded process and a pid reused later is never
// signalled. Once that process has exited, what is left of the group it led
// (a worker hung after it) is signalled one process at a time, each through
// a pidfd opened and checked against its group, session and start time, and
// only while no other process holds the group's id (Process.Signal,
// signalLeft); the same for an instance whose process exited while no
// smoothserve watched it, where the state file recorded its session
// (Leftover). A state file on disk is always a whole one: Write replaces it
// atomically, and a Writer exchanges it with a spare written whole before
// (short of a power loss, after which the instances are gone too: see
// Writer).
package handoff
