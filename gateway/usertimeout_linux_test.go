package gateway

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// A connection's unacknowledged data is bounded in time like its silence:
// a peer that vanished while lines were on their way to it is reaped about
// twice KeepAlive later, not after the kernel's fifteen minutes of
// retransmissions.
func TestKeepAliveSetsUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	srv := &Server{cfg: Config{KeepAlive: 7 * time.Second, SendBuffer: 32 << 10}}
	srv.tune(sc)
	rc, err := sc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	rc.Control(func(fd uintptr) {
		got, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout)
	})
	if gerr != nil || got != 14000 {
		t.Fatalf("TCP_USER_TIMEOUT = %d ms (%v), want 14000", got, gerr)
	}
	rc.Control(func(fd uintptr) {
		got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	// Linux doubles the value for its bookkeeping.
	if gerr != nil || got != 64<<10 {
		t.Fatalf("SO_SNDBUF = %d (%v), want %d", got, gerr, 64<<10)
	}
}
