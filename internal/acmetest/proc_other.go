//go:build !linux

package acmetest

import "syscall"

// sysProcAttr: no parent-death signal outside Linux; the tools are stopped
// by the test's cleanup only.
func sysProcAttr() *syscall.SysProcAttr { return nil }
