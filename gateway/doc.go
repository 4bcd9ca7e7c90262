// Package gateway serves chat clients: it accepts raw TCP connections speaking
// the classic line protocol (docs/protocol.md), runs the NAME handshake,
// commands and rooms, and moves every chat line through a Bus.
//
// A Server is safe for concurrent use. Each Session has at most one reader
// goroutine at a time (none while an idle session is parked, park.go) and
// at most one writer goroutine; nothing else writes to its connection. Bus
// callbacks only append to sessions' bounded queues, so no client can slow
// the fan-out: one that falls behind is disconnected.
//
// Lock order: Server.mu, then room.mu, then Session.mu; the poller's lock
// is taken with none of them held. No lock is held while writing to a
// socket or calling the Bus.
package gateway
