//go:build !linux

package main

import "syscall"

// sysProcAttr returns nil: outside Linux a server process ends when its
// standard input closes, which happens when the harness dies.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// bindAddressNoPort is nil: the source port is picked at bind.
var bindAddressNoPort func(network, address string, c syscall.RawConn) error
