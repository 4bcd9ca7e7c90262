package gateway

import (
	"net"
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT (linux/tcp.h); package syscall does
// not name it.
const tcpUserTimeout = 0x12

// setUserTimeout bounds how long data sent on c may stay unacknowledged
// before the kernel drops the connection. Keep-alive probes are only sent
// while nothing is in flight, so without it a peer that vanished while
// lines were on their way to it would be retried for some fifteen minutes.
func setUserTimeout(c *net.TCPConn, d time.Duration) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d.Milliseconds()))
	})
}
