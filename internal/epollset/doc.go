// Package epollset is an epoll instance whose waits go through Go's own
// poller: a goroutine waiting for the set's events is parked like one
// waiting for a socket, holding no thread and no P (processor).
//
// A blocking epoll_wait(2) would hold both for as long as it waits, until
// the runtime's sysmon takes the P back (20 µs to 10 ms later): the
// goroutines the waiter had just made runnable sat on that P meanwhile,
// and with GOMAXPROCS=1 nothing ran at all.
//
// Invariant: the only blocking wait on the set is Wait's park in the
// runtime's poller; every epoll_wait(2) it makes has a timeout of 0.
package epollset
