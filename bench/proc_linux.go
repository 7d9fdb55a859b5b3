package main

import "syscall"

// sysProcAttr has the kernel kill a server process when the harness dies,
// however it dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
