package demo

import "syscall"

// procAttr puts a child in its own process group, so a Ctrl-C at the
// terminal reaches only the demo, which then stops its children in order;
// kills it if the demo dies; and runs it as u when u is set.
func procAttr(u *runUser) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if u != nil {
		a.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
	}
	return a
}
