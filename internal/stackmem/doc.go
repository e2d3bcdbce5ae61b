// Package stackmem measures the goroutine stacks a test's subject keeps:
// how much stack each of its goroutines holds once it waits (a connection
// goroutine between two requests, one that dialed). The GC shrinks a
// stack that uses little of itself, which would hide what the subject
// left, so a measurement runs in the test binary run again with
// GODEBUG=gcshrinkstackoff=1 (InProcessOfItsOwn), killed before the
// test's own deadline.
//
// Invariant: InUse counts after a GC, so stacks of goroutines that have
// ended are not counted; only a caller's own process is measured.
package stackmem
