//go:build unix && !linux

package demo

import "syscall"

// procAttr puts a child in its own process group, so a Ctrl-C at the
// terminal reaches only the demo, which then stops its children in order;
// and runs it as u when u is set.
func procAttr(u *runUser) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if u != nil {
		a.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
	}
	return a
}
