// Package sockconn makes a net.Conn of a connected TCP socket's descriptor
// that another process passed (SCM_RIGHTS), at the cost of four system
// calls: it checks that the descriptor is non-blocking, registers it with
// Go's poller once (os.NewFile) and asks its peer's address
// (getpeername). net.FileConn, the standard way, takes fifteen: it
// duplicates the descriptor, registers both, reads the socket's type and
// both addresses, sets TCP_NODELAY and keep-alive again (the socket has
// them from the process that accepted it), then closes the first. An upgrade takes over thousands of
// connections one after another, and each of those calls is on its
// clients' wait.
//
// Invariant: a Conn owns its descriptor from New on (on New's error too:
// it is closed then) and closes it once. It behaves as a *net.TCPConn's
// net.Conn does for what smoothserve uses: Read, Write, the deadlines,
// Close, CloseWrite, RemoteAddr, LocalAddr (asked of the socket the first
// time: nil if that is after Close) and SyscallConn; its errors are
// *net.OpError as net's are, a closed Conn's wrapping net.ErrClosed (not
// os.ErrClosed) and a deadline's os.ErrDeadlineExceeded, and
// SyscallConn's RawConn gives the same.
package sockconn
