// Package syncbuf is a bytes.Buffer for a child process's output that a
// test or a suite reads while the child still writes.
//
// Guarantee: Write and String may be called from any goroutines at once;
// String returns everything written before it was called, never a torn
// write.
package syncbuf
