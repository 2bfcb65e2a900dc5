//go:build !unix

package demo

import "syscall"

// procAttr has nothing to set outside Unix; root does not arise there.
func procAttr(*runUser) *syscall.SysProcAttr { return nil }
