package acmetest

import "syscall"

// sysProcAttr has the kernel kill a tool if the test process dies without
// running its cleanups (a panic, a -timeout, SIGKILL). The signal follows
// the death of the OS thread that started the child; the Go runtime only
// ends threads of goroutines that exit while locked to them, which Start
// does not do.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
