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
// on its pages above the highest resident one: the runtime takes free
// pages lowest first, so its next new pages are there (below it are pages
// in use, pages it freed, and the padding that hides where the heap
// starts, which it never uses).
//
// Invariant: only pages of that mapping, a private writable anonymous one,
// that are not resident are touched, and only by the kernel: no byte of
// memory changes (a page made resident reads zero, as it would at its
// first touch), and the runtime's view of its heap is left as it was. The
// runtime counts such pages as returned to the system until it uses them,
// so the process's resident set exceeds what the runtime reports by at
// most the bytes populated.
package heapwarm
