// Package heapwarm makes pages of the Go heap resident ahead of their first
// use. On Linux an anonymous page is given memory at its first touch, one
// page fault at a time; where a fault is dear (a virtual machine that
// traps each change of a page table: 10-25 µs a page on the machine
// smoothserve is measured on, against 1-2 µs a page made resident by one
// madvise(MADV_POPULATE_WRITE) over many), a process about to need a few
// MB at once (a new smoothserve taking over the connections of the old
// one) does better to pay for them beforehand, and for less.
//
// Populate works on the mapping of the heap that holds a new object, and
// on its pages not resident, lowest first: pages the runtime has mapped
// and not handed out, or handed out and not written yet. It skips those
// below the lowest resident page, the padding that hides where the heap
// starts (Go 1.26), which the runtime never uses. Which of the others it
// uses next is its own (each P takes free pages 64 at a time), so Populate
// is meant to be given about what the process is about to use. The runtime
// maps its heap 4 MiB at a time, from a random point of the first 4 MiB:
// how much of a mapping is there to populate varies from process to
// process, and Populate makes no more than that resident.
//
// Invariant: only pages of that mapping, a private writable anonymous one,
// that are not resident are touched, and only by the kernel: no byte of
// memory changes (a page never touched reads zero, as it would at its
// first touch; one swapped out is read back), and the runtime's view of
// its heap is left as it was. The runtime counts such pages as returned
// to the system until it uses them (its scavenger, GOMEMLIMIT and
// runtime/metrics do not see them), so the process's resident set exceeds
// what the runtime reports by at most the bytes populated.
package heapwarm
