// Package priority changes the CPU priority of this whole process: its nice
// value (Lower), or its scheduling class (Idle: SCHED_IDLE, the CPU no
// normal thread wants). Linux sets these per thread, and a Go program runs
// on several, so each thread listed in /proc/self/task is set; threads the
// runtime starts later inherit the priority of the thread that starts them.
//
// Invariant: a process lowers its priority only if it may raise it back
// (CanRaise), unless it means to keep it low for the rest of its life.
package priority
