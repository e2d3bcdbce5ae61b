// Package agent answers HAProxy's agent checks ("agent-check agent-port P"
// on a server line): HAProxy connects over TCP, may send its "agent-send"
// text, reads one line and closes. The line tells HAProxy whether to send
// this instance new connections.
//
// Invariants:
//   - Every accepted connection gets exactly one line, the one for the
//     State that state() returns when it is written, and nothing else:
//     "up ready\n" (Serving), "drain\n" (Draining) or "maint\n"
//     (Maintenance).
//   - The answer never waits for the client: it is written as soon as the
//     connection is accepted, before anything is read.
//   - A client holds its connection for at most answerTimeout (2 s) and at
//     most maxConns connections are open at once; past that, Serve stops
//     accepting until one closes, so a hostile client costs a bounded
//     number of descriptors and goroutines, never a blocked answer to the
//     others.
//   - Serve returns only after every goroutine it started has ended and
//     every connection it accepted is closed.
//
// Why Serving says "up ready" and not "up": in HAProxy (2.6, checked in
// its tcpcheck.c and configuration.txt) the words of an agent's line fall
// in two independent groups. "up", "down", "fail" and "stopped" set the
// operational state; "ready", "drain" and "maint" set the administrative
// state, and only "ready" cancels a DRAIN or MAINT the agent set. A plain
// "up" after "drain" leaves the server drained for good; the test against
// a real HAProxy shows it.
package agent
