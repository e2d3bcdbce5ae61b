// Package sendwait writes to a socket and then waits until the same socket
// has something to read, in one pass through Go's poller: the way to send
// a request whose answer comes back on the socket it went out on.
//
// A read in Go tries the socket first and waits only when it finds
// nothing; right after a write, the answer has not come yet, so that try
// is a system call that always finds nothing. Send writes inside the
// poller's read wait (syscall.RawConn.Read), whose readiness flag is
// cleared before the write: whatever arrives after the write wakes it,
// and the read that follows finds the answer at the first try.
//
// The poller clears that flag before the write, so a close or bytes that
// came before the wait began raise nothing in it: the caller makes sure
// there were none, or asks SendQuiet to look first, in the same wait.
//
// Invariant: Send writes only from the function RawConn.Read calls, and
// only on its first call; it returns once p is written and the socket is
// readable, closed, in error or past its read deadline, or at once with
// what was written when the socket would not take all of p (the caller
// writes the rest its usual way). It never reads.
package sendwait
