// Package idlemem measures what idle connections cost a process's resident
// memory. A test runs its subject (a proxy, a pool) in a helper process —
// its own test binary run again as one test — that answers commands on its
// stdin (Serve), and reads the helper's RSS a few seconds after each step,
// again after two garbage collections and after returning free memory to
// the OS (Helper.Measure). Its callers raise their limit of open files
// first (internal/nofile): they open thousands of connections.
//
// Invariant: a helper started here ends when its test does (stdin closed,
// killed if it has not exited 10 s later).
package idlemem
