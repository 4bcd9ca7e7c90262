//go:build !linux

package gateway

import (
	"net"
	"time"
)

// setUserTimeout is a no-op here: a peer that vanished while lines were on
// their way to it is dropped by the write timeout once its socket buffer
// fills, or by the system's retransmission limit.
func setUserTimeout(*net.TCPConn, time.Duration) {}
