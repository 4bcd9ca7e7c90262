//go:build !linux

package gateway

import "log/slog"

// poller parks idle readers on Linux only (park_linux.go); elsewhere every
// TCP session keeps its reader goroutine.
type poller struct{}

func newPoller(*slog.Logger) *poller   { return nil }
func (p *poller) close()               {}
func (p *poller) park(*tcpConn) bool   { return false }
func (p *poller) unpark(*tcpConn) bool { return false }
