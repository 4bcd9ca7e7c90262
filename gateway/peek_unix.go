//go:build unix

package gateway

import (
	"net"
	"syscall"
)

// bytesWaiting reports whether c has received bytes not read yet, without
// blocking. c's read deadline must not have passed: clear it first.
func bytesWaiting(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	waiting := false
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		waiting = err == nil && n > 0
		return true // never wait
	})
	return waiting
}
