// Package rawio reads and writes a connected non-blocking socket the way
// net.Conn does — waiting in Go's poller, within the socket's deadlines —
// but makes the read(2) and write(2) themselves raw system calls
// (syscall.RawSyscall), without the runtime's hand-off around a system
// call.
//
// Why: a system call made the usual way (syscall.Syscall) marks its
// goroutine's P as in a system call; the runtime's monitor thread (sysmon)
// takes a P that stays so for one of its 20 µs ticks, starts another
// thread to run it, and keeps polling every 20 µs while it finds such Ps.
// A socket call on loopback runs the receiving side's TCP stack too, and
// under load often outlasts a tick: perf of the proxy under `wrk -c64`
// put sysmon's polling at 8 % of its CPU, the P hand-offs at 3 %, and 0.7
// context switches a request. A call on a non-blocking socket never
// blocks: it is CPU work, which the goroutine's P may as well keep
// (cloudwego/netpoll makes its readv and writev raw for the same reason).
//
// The cost: while a raw call runs, its goroutine keeps its P and cannot be
// stopped, so a stop of the world (a GC phase) waits for it. A call on a
// non-blocking socket takes microseconds; the kernel can still make it
// sleep (reclaiming memory for a socket buffer, a cgroup's memory.high),
// and then the whole process waits with it. A machine that far out of
// memory is not serving well anyway; the request path's calls are worth
// the gain on every request.
//
// Invariant: every call made here is on a descriptor in non-blocking mode
// (Go's sockets are) and returns at once; the waiting is the poller's
// (syscall.RawConn.Read and Write). Under the race detector the calls are
// syscall.Read and syscall.Write, which tell it that a socket orders the
// memory accesses around it (raw calls would not: false reports).
package rawio
