// Package proctree reads who is whose parent from /proc (Linux), for the
// tests and suites that check which processes a daemon runs.
//
// Guarantee: a process that is gone, or exits while it is read, counts as
// no one's child (Parent reports -1); reading never fails otherwise.
package proctree
