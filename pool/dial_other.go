//go:build !linux

package pool

import "syscall"

// setUserTimeout does nothing here: TCP_USER_TIMEOUT is Linux's; keepalive
// still applies.
func setUserTimeout(string, string, syscall.RawConn) error { return nil }
