// Package sockconn makes a net.Conn of a connected TCP socket's descriptor
// that another process passed (SCM_RIGHTS), at the cost of one system
// call: it asks its peer's address (getpeername). It goes into Go's poller
// (a check that it is non-blocking, then os.NewFile: three calls more)
// only when it is first read, written or given a deadline; until then
// Control, Close, CloseWrite and the addresses work on the descriptor as
// it is. net.FileConn, the standard way, takes fifteen: it duplicates the
// descriptor, registers both, reads the socket's type and both addresses,
// sets TCP_NODELAY and keep-alive again (the socket has them from the
// process that accepted it), then closes the first. An upgrade takes over
// thousands of connections one after another, and each of those calls is
// on its clients' wait; most of them are idle, parked on arrival (an epoll
// set of the proxy's own, through Control) and passed on at the next
// upgrade, or closed, without a read.
//
// Invariant: a Conn owns its descriptor from New on (New fails only for
// one that is not open) and closes it once; Control's function runs with
// the descriptor open, in the poller or not, and must not use the Conn
// itself (its read, write, deadlines, Close, Control): before the
// poller, that waits for the lock the Control holds. It behaves as a *net.TCPConn's
// net.Conn does for what smoothserve uses: Read, Write, the deadlines,
// Close, CloseWrite, RemoteAddr, LocalAddr (asked of the socket the first
// time: nil if that is after Close) and SyscallConn; its errors are
// *net.OpError as net's are, a closed Conn's wrapping net.ErrClosed (not
// os.ErrClosed) and a deadline's os.ErrDeadlineExceeded, and
// SyscallConn's RawConn gives the same.
package sockconn
