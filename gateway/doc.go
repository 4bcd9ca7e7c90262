// Package gateway serves chat clients: classic TCP clients speaking the line
// protocol, and WebSocket clients speaking JSON (docs/protocol.md), plus the
// chat web page. Both kinds are Sessions: one protocol core (nickname,
// rooms, commands, rate limit, bounded queue, close reasons) over a
// transport (tcp.go, ws.go) that frames input and writes output in its own
// encoding (format.go, json.go). Every chat line moves through a Bus.
//
// A Server is safe for concurrent use. Each Session has at most one reader
// goroutine at a time (none while an idle TCP session is parked, park.go)
// and at most one writer goroutine; nothing else writes to its connection.
// Bus callbacks only append to sessions' bounded queues, so no client can
// slow the fan-out: one that falls behind is disconnected.
//
// Lock order: Server.mu, then room.mu, then Session.mu; the poller's lock
// (park.go) is taken with none of them held. No lock is held while writing
// to a socket or calling the Bus.
package gateway
