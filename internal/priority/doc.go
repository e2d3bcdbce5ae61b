// Package priority changes the CPU priority (nice value) of this whole
// process. Linux's setpriority applies to one thread, and a Go program runs
// on several, so each thread listed in /proc/self/task is set; threads the
// runtime starts later inherit the value of the thread that starts them.
//
// Invariant: a process lowers its priority only if it may raise it back
// (CanRaise), unless it means to keep it low for the rest of its life.
package priority
