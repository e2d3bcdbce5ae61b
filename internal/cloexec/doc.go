// Package cloexec keeps the descriptors a process inherited from reaching
// the programs it runs.
//
// A descriptor inherited without close-on-exec (a pipe a shell, a CI
// harness or a terminal multiplexer left open) passes on to every program
// started from then on: smoothserve would hand it to each instance, and
// anything waiting for that pipe's end waits for as long as the last
// instance lives.
//
// Invariant: after Mark, every descriptor the process holds is
// close-on-exec; a program it runs gets only what os/exec passes on
// purpose (Stdin, Stdout, Stderr, ExtraFiles).
package cloexec
