package main

import "syscall"

// sysProcAttr has the kernel kill a server process when the harness dies,
// however it dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT, which the syscall
// package does not define on every architecture.
const ipBindAddressNoPort = 0x18

// bindAddressNoPort is a net.Dialer Control function that has the kernel
// leave the port of a bound source address to connect(2), which picks one
// unique for the whole address pair rather than one free on its own.
func bindAddressNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
