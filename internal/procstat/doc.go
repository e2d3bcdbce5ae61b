// Package procstat reads what Linux says of a process in /proc: its
// /proc/PID/stat fields (state, parent, process group, CPU time, start
// time, and so when it started: Started), its memory (/proc/PID/statm),
// its open files and its network namespace's IP bytes (OpenFiles,
// NetOctets), one process at a time (Read, RSS, Memory), summed over a
// process group (Group, Groups) or listed by group (Members): a service
// instance runs in a group of its own, with the workers it forks (Node's
// cluster, gunicorn). A Sampler turns such sums into CPU percent and
// memory between one Measure and the next: the daemon's status has them.
//
// Invariant: /proc/PID/stat is split at the last ')' of the file, so a
// command name (field 2) holding spaces, parentheses or ") " never shifts
// the fields after it; a file with fewer fields than start time (field 22),
// or one of them not a number, is an error, never a zero. Clock ticks are
// converted with the kernel's USER_HZ as the ELF auxiliary vector gives it
// (AT_CLKTCK, what sysconf(_SC_CLK_TCK) returns), 100 when it cannot be read.
//
// Guarantee of the group sums: a process that exits while /proc is
// scanned is left out of them, never an error; a usage counts each process
// once, by pid and start time, so CPUSince subtracts a process's earlier
// time from its own only.
package procstat
