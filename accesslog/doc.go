// Package accesslog writes the access logs: one line per request, in
// nginx's combined format (with the duration, the upstream time, the
// service and the instance appended) or as JSON.
//
// Invariants: nothing is written on the request path. A connection formats
// its lines into a buffer of its own (Entry.Append) and hands the buffer
// over (Log.Submit) when it is about to wait for its client, so a line
// costs no syscall and no lock per request; one goroutine per log writes
// the buffers through a 64 KiB buffer, flushed every 100 ms. Each write of
// the file holds whole lines (of a regular file, opened to append, one
// write(2) holds the buffer; of a pipe, such as stdout, a write holds at
// most PIPE_BUF, 4 KiB, which the kernel keeps whole, or one longer line
// alone), so another writer of the same file (the other smoothserve
// during an upgrade) writes between lines: only a line over 4 KiB in a
// pipe can be interleaved. Reopen (SIGUSR1, after logrotate renamed the
// file) makes the next write go to a new file at the same path; nothing is
// lost between the two. Close writes what was submitted before it.
// Dropped counts, by line, what a full queue (or a closed log) refused
// rather than hold a request up, and what a write that failed (a full
// disk) did not finish (one it cut is left cut in the file, ended by a
// newline before the next write; the other process's line may come
// between, joined to it); the next lines are written when the file takes
// them again. Flush returns once what was submitted before it is
// written or counted, or when its context ends.
package accesslog
