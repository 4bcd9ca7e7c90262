package main

import "strconv"

// ngircdConf is a configuration for Debian's ngIRCd that measures it as
// chatbench measures chatd: listening on host:port only, limits out of the
// way (connections, connections per address, channels, nickname length),
// flood penalties off (MaxPenaltyTime = 0: senders are not throttled to a
// line a second), no DNS, IDENT or PAM lookups when a client connects, and
// pings rare enough not to count. `chatbench ngircd-conf` prints it.
func ngircdConf(host string, port int) string {
	return `[Global]
	Name = bench.local
	Info = chatbench
	Listen = ` + host + `
	Ports = ` + strconv.Itoa(port) + `
	MotdPhrase = bench
[Limits]
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 31
	MaxPenaltyTime = 0
	PingTimeout = 600
	PongTimeout = 600
[Options]
	DNS = no
	Ident = no
	PAM = no
`
}
