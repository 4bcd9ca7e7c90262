//go:build reliability

package main

import "syscall"

// relSysProcAttr has chatd killed if the test process dies first (a test
// timeout panics without running cleanups).
func relSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// relMaxFiles is the most files this process may open (the hard limit,
// which the Go runtime raises the soft one to).
func relMaxFiles() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 1024
	}
	return int(min(l.Max, 1<<20))
}
